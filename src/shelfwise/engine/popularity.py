"""How often each catalog item was taken, and which items count as popular (a reason an answer gives)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from shelfwise.engine.catalog import CatalogSnapshot
from shelfwise.store import Store

#: An item is popular from this quantile of the event counts of items with events (and one event) on.
POPULAR_QUANTILE = 0.9


class Popularity:
    """Event counts by catalog position. Writers hold the engine's write lock; a reader takes
    `counts` once (a catalog that grows gets a new array, so a reader's array never changes length)."""

    def __init__(self, counts: np.ndarray) -> None:
        self.counts = counts
        self._popular = np.zeros(0, dtype=bool)
        self.refresh()

    @classmethod
    def of_store(cls, store: Store, catalog: CatalogSnapshot) -> Popularity:
        return cls.of_counts(store.item_event_counts(), catalog)

    @classmethod
    def of_counts(cls, by_item: dict[str, int], catalog: CatalogSnapshot) -> Popularity:
        counts = np.zeros(len(catalog), dtype=np.float64)
        for item_id, count in by_item.items():
            position = catalog.index.get(item_id)
            if position is not None:
                counts[position] = count
        return cls(counts)

    def add(self, positions: Iterable[int]) -> None:
        counts = self.counts
        for position in positions:
            counts[position] += 1

    def remove(self, positions: Iterable[int]) -> None:
        counts = self.counts
        for position in positions:
            counts[position] = max(counts[position] - 1, 0)

    def grow(self, added: int) -> None:
        """Room for `added` new catalog items (no events yet)."""
        if added:
            self.counts = np.concatenate([self.counts, np.zeros(added)])

    def refresh(self) -> None:
        """Recompute the popular set from the counts."""
        counts = self.counts
        threshold = np.quantile(counts[counts > 0], POPULAR_QUANTILE) if (counts > 0).any() else math.inf
        self._popular = counts >= max(threshold, 1)

    def popular(self, n: int) -> np.ndarray:
        """Whether each of the first `n` catalog positions is popular."""
        popular = self._popular[:n]
        if len(popular) < n:
            popular = np.concatenate([popular, np.zeros(n - len(popular), dtype=bool)])
        return popular
