"""Records, readers, validation, cleaning, the `Dataset`, splits and the synthetic shop: the first box of
ARCHITECTURE.md, which every other imports from and which imports none of them."""
