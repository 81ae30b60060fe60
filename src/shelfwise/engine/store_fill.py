"""Filling a store from a model folder's data set: its catalog always, its histories into an empty store."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import numpy as np

from shelfwise.data.dataset import Dataset
from shelfwise.store import EventRecord, ItemRecord, Store

logger = logging.getLogger(__name__)


def item_records(dataset: Dataset, rows: np.ndarray | None = None) -> list[ItemRecord]:
    """The data set's catalog (its items at `rows`: all by default) as store records (columns read
    once, not cell by cell)."""
    table = dataset.items if rows is None else dataset.items.iloc[rows]
    n = len(table)
    created = table["created_at"] if "created_at" in table.columns else None
    seconds = np.full(n, np.nan) if created is None else _epochs(created)
    prices = table["price"].to_numpy(dtype=float, na_value=np.nan)
    texts = {c: table[c].to_numpy(dtype=object) for c in ("item_id", "title", "description", "category", "brand")}
    stock = table["in_stock"].to_numpy(dtype=bool)
    return [
        ItemRecord(
            item_id=str(texts["item_id"][row]),
            title=str(texts["title"][row] or ""),
            description=str(texts["description"][row] or ""),
            category=str(texts["category"][row] or ""),
            brand=str(texts["brand"][row] or ""),
            price=None if prices[row] != prices[row] else float(prices[row]),
            tags=", ".join(str(t) for t in tags) if isinstance(tags, (list, tuple, np.ndarray)) else str(tags or ""),
            in_stock=bool(stock[row]),
            created_at=None if seconds[row] != seconds[row] else float(seconds[row]),
        )
        for row, tags in enumerate(table["tags"].to_numpy(dtype=object))
    ]


def _epochs(stamps) -> np.ndarray:
    """Seconds since the epoch of a column of times (naive ones are UTC); NaN where unknown."""
    import pandas as pd

    values = pd.to_datetime(stamps, utc=True, errors="coerce")
    out = np.full(len(values), np.nan)
    known = values.notna().to_numpy()
    out[known] = [stamp.timestamp() for stamp in values[known]]
    return out


def event_records(dataset: Dataset) -> Iterator[EventRecord]:
    """The data set's events in time order, made one at a time (the store reads them in chunks).
    Nothing is computed before the first is asked for: a store that holds them already asks for none
    (every start of every worker called this, and sorted and copied every event for nothing)."""
    frame = dataset.interactions.sort_values("order", kind="stable")
    users = dataset.user_ids[frame["user"].to_numpy()]
    items = dataset.item_ids[frame["item"].to_numpy()]
    stamps = frame["timestamp"]
    if hasattr(stamps, "dt"):
        seconds = np.where(stamps.isna(), np.nan, stamps.astype("int64", errors="ignore") / 1e9)
    else:
        seconds = stamps.to_numpy(dtype=float)
    seconds = np.asarray(seconds, dtype=float)
    # events without a time keep their source order, one second apart, before any dated event
    undated = ~np.isfinite(seconds)
    seconds[undated] = np.arange(int(undated.sum()), dtype=float)
    values = frame["value"].to_numpy(dtype=float)
    kinds = frame["event_type"].astype(str).to_numpy()
    for u, i, k, t, v in zip(users, items, kinds, seconds, values, strict=True):
        yield EventRecord(str(u), str(i), str(k), float(t), None if v != v else float(v))


def fill_store(store: Store, dataset: Dataset, *, progress: Callable[[int], None] | None = None) -> list[ItemRecord]:
    """Fill an empty store with the training catalog and histories (a resumable bulk load; `progress`
    hears how many events are in); add catalog items it lacks. Returns the store's catalog (read once)."""
    existing = store.all_items()
    known = {r.item_id for r in existing}
    lacking = np.array([str(i) not in known for i in dataset.item_ids], dtype=bool)
    missing = item_records(dataset, np.flatnonzero(lacking)) if lacking.any() else []
    if missing:
        store.upsert_items(missing)
        logger.info("store: added %d catalog items from the model's data set", len(missing))
    if dataset.n_interactions:
        count = store.bulk_load_events(
            load_key(dataset), event_records(dataset), total=dataset.n_interactions, progress=progress
        )
        if count:
            logger.info("store: loaded %d training events of %d shoppers", count, dataset.n_users)
    return existing + missing


def load_key(dataset: Dataset) -> str:
    """The bulk-load job of a data set's events (`Store.bulk_load_events`)."""
    return f"training events of {dataset.name}: {dataset.n_interactions} events, {dataset.n_users} shoppers"


def catalog_records(store: Store, dataset: Dataset) -> list[ItemRecord]:
    """The store's catalog (filled from the data set where it lacks it), the model's items first in
    the model's order: catalog positions then match the serving artifacts' rows, and items added
    after training follow them in one run."""
    records = fill_store(store, dataset)
    order = {str(item_id): row for row, item_id in enumerate(dataset.item_ids)}
    first = sorted((r for r in records if r.item_id in order), key=lambda r: order[r.item_id])
    return first + [r for r in records if r.item_id not in order]
