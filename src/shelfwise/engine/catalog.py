"""The catalog as arrays indexed by catalog position, published as immutable snapshots.

A write builds a new `CatalogSnapshot` beside the current one and the engine publishes it only once
everything a read needs for the new items (text vectors, lexical entries, popularity) is in place,
by one reference assignment. A read takes one snapshot at its start and uses only that, so it never
sees an item whose vectors are not there yet, however writes interleave.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from shelfwise.errors import UnknownIdError
from shelfwise.store.base import ItemRecord


@dataclass(frozen=True, eq=False)
class CatalogSnapshot:
    """Items by position (``0..n-1``, in the order they became known) with the columns filters and
    reasons need. Never changed after it is built."""

    ids: list[str]
    index: dict[str, int]
    records: list[ItemRecord]
    in_stock: np.ndarray
    prices: np.ndarray
    categories: np.ndarray  # casefolded, for filters
    created_at: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self.index

    def positions_of(self, item_ids: Iterable[str], *, field_name: str = "items") -> np.ndarray:
        """The positions of `item_ids`; `UnknownIdError` naming each id not held, by its place."""
        positions, unknown = [], []
        for row, item_id in enumerate(item_ids):
            position = self.index.get(item_id)
            if position is None:
                unknown.append(f"{field_name}[{row}]: unknown item {item_id!r}")
            else:
                positions.append(position)
        if unknown:
            raise UnknownIdError("; ".join(unknown[:20]))
        return np.array(positions, dtype=np.int64)

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

    def with_records(self, records: list[ItemRecord]) -> tuple[CatalogSnapshot, list[int], list[int]]:
        """A new snapshot with `records` added (new ids) or replaced (known ids); this one is left as
        it is. Returns (snapshot, positions added, positions updated)."""
        ids, index, records_list = list(self.ids), dict(self.index), list(self.records)
        added, updated = [], []
        for record in records:
            position = index.get(record.item_id)
            if position is None:
                index[record.item_id] = len(ids)
                ids.append(record.item_id)
                records_list.append(record)
                added.append(len(ids) - 1)
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
        snapshot = CatalogSnapshot(ids, index, records_list, in_stock, prices, categories, created)
        return snapshot, added, updated


EMPTY = CatalogSnapshot(
    [],
    {},
    [],
    np.zeros(0, dtype=bool),
    np.zeros(0, dtype=np.float64),
    np.zeros(0, dtype=object),
    np.zeros(0, dtype=np.float64),
)


class Catalog:
    """The current `CatalogSnapshot`, replaced whole by `publish` (writers hold one lock)."""

    def __init__(self, records: list[ItemRecord]) -> None:
        self.lock = threading.Lock()
        self.current, _, _ = EMPTY.with_records(records)

    def publish(self, snapshot: CatalogSnapshot) -> None:
        self.current = snapshot
