"""The catalog as arrays, indexed by catalog position, that grow as items are added."""

from __future__ import annotations

import math
import threading
import time

import numpy as np
import pandas as pd

from shelfwise.store.base import ItemRecord


class Catalog:
    """Items by position (``0..n-1``, in the order they became known) with the columns filters and
    reasons need. Appends and updates replace whole arrays, so a reader holding the old ones is safe."""

    def __init__(self, records: list[ItemRecord]) -> None:
        self._lock = threading.Lock()
        self.ids: list[str] = []
        self.index: dict[str, int] = {}
        self.records: list[ItemRecord] = []
        self.in_stock = np.zeros(0, dtype=bool)
        self.prices = np.zeros(0, dtype=np.float64)
        self.categories = np.zeros(0, dtype=object)  # casefolded, for filters
        self.created_at = np.zeros(0, dtype=np.float64)
        self.apply(records)

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, item_id: str) -> bool:
        return item_id in self.index

    def apply(self, records: list[ItemRecord]) -> tuple[list[int], list[int]]:
        """Add new items and update known ones; returns (positions added, positions updated)."""
        with self._lock:
            added, updated = [], []
            records_list = list(self.records)
            for record in records:
                position = self.index.get(record.item_id)
                if position is None:
                    self.index[record.item_id] = len(self.ids)
                    self.ids.append(record.item_id)
                    records_list.append(record)
                    added.append(len(self.ids) - 1)
                else:
                    records_list[position] = record
                    updated.append(position)
            n = len(records_list)
            in_stock = np.resize(self.in_stock, n)
            prices = np.resize(self.prices, n)
            categories = np.resize(self.categories, n)
            created = np.resize(self.created_at, n)
            for position in (*added, *updated):
                record = records_list[position]
                in_stock[position] = bool(record.in_stock)
                prices[position] = math.nan if record.price is None else float(record.price)
                categories[position] = (record.category or "").strip().casefold()
                created[position] = math.nan if record.created_at is None else float(record.created_at)
            self.records = records_list
            self.in_stock, self.prices, self.categories, self.created_at = in_stock, prices, categories, created
            return added, updated

    def titles(self) -> list[str]:
        return [r.title for r in self.records]

    def category_names(self) -> list[str]:
        return [r.category for r in self.records]

    def recent(self, days: float, *, now: float | None = None) -> np.ndarray:
        """Mask of items created within the last `days`."""
        now = time.time() if now is None else now
        with np.errstate(invalid="ignore"):
            return self.created_at >= now - days * 86400.0

    def frame(self, positions: np.ndarray) -> pd.DataFrame:
        """An item table (the columns item text templates read) for some positions."""
        rows = [self.records[p] for p in positions]
        return pd.DataFrame(
            {
                "item_id": [r.item_id for r in rows],
                "title": [r.title for r in rows],
                "description": [r.description for r in rows],
                "category": [r.category for r in rows],
                "brand": [r.brand for r in rows],
                "tags": [[t.strip() for t in r.tags.split(",") if t.strip()] for r in rows],
            }
        )
