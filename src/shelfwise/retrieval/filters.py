"""Business rules as a boolean mask over the catalog."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from shelfwise.data.schema import CATEGORY_SEPARATOR
from shelfwise.errors import ConfigError


@dataclass(frozen=True)
class Filters:
    """Which items may be shown.

    Attributes:
        in_stock: only items in stock.
        category: only items in this category or below it (``"Beauty"`` matches ``"Beauty > Skin"``).
        min_price, max_price: only items priced in this range (an item without a price is left out
            when either bound is given).
        exclude: item indices never to show (already purchased, the query item, ...).
    """

    in_stock: bool = True
    category: str | None = None
    min_price: float | None = None
    max_price: float | None = None
    exclude: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        for name in ("min_price", "max_price"):
            value = getattr(self, name)
            if value is not None and (not math.isfinite(value) or value < 0):
                raise ConfigError(f"{name} must be a finite number >= 0. Got {value!r} instead.")
        if self.min_price is not None and self.max_price is not None and self.min_price > self.max_price:
            raise ConfigError(f"min_price ({self.min_price}) is above max_price ({self.max_price}).")

    def mask(self, *, in_stock: np.ndarray, categories: np.ndarray, prices: np.ndarray) -> np.ndarray:
        """Boolean mask over items from the catalog's columns (same length each)."""
        keep = in_stock.astype(bool, copy=True) if self.in_stock else np.ones(len(in_stock), dtype=bool)
        if self.category:
            wanted = self.category.strip().casefold()
            prefix = wanted + CATEGORY_SEPARATOR.casefold()
            keep &= np.fromiter(
                ((c == wanted or c.startswith(prefix)) for c in categories), dtype=bool, count=len(categories)
            )
        if self.min_price is not None:
            keep &= prices >= self.min_price  # NaN compares False: unpriced items are left out
        if self.max_price is not None:
            keep &= prices <= self.max_price
        if self.exclude:
            excluded = np.asarray(self.exclude, dtype=np.int64)
            keep[excluded[(excluded >= 0) & (excluded < len(keep))]] = False
        return keep
