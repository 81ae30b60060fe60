"""`Dataset`: interactions as integer indices, the external id maps, and the item table."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from shelfwise.data.cleaning import resolve_event_weights
from shelfwise.data.readers import empty_items
from shelfwise.data.schema import ITEM_COLUMNS
from shelfwise.errors import DataFormatError, DatasetNotFoundError, UnknownIdError

FORMAT_VERSION = 1
INTERACTION_COLUMNS = ("user", "item", "event_type", "timestamp", "value", "weight", "order")


def _sorted_ids(values: Iterable[str]) -> np.ndarray:
    """Distinct ids in ascending string order: index order then equals id order (used for tie-breaks)."""
    return np.array(sorted(set(values)), dtype=object)


class Dataset:
    """A shop's behaviour log and catalog, indexed for models.

    External ids (strings) live only here: users and items are numbered ``0..n-1`` in ascending order
    of their external id, so a tie broken by lowest index is a tie broken by id. Models see integer
    indices only.

    Attributes:
        interactions: one row per event, columns ``user, item, event_type, timestamp, value, weight,
            order`` (``order`` is the position in the source, used to break ties in time).
        items: the item table, row ``i`` describes item index ``i``.
        user_ids: external id of each user index.
    """

    def __init__(
        self,
        interactions: pd.DataFrame,
        user_ids: np.ndarray,
        items: pd.DataFrame,
        *,
        name: str = "dataset",
        event_weights: Mapping[str, float] | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        missing = [c for c in INTERACTION_COLUMNS if c not in interactions.columns]
        if missing:
            raise DataFormatError(f"Dataset interactions lack column(s) {missing}.")
        self.interactions = interactions
        self.user_ids = np.asarray(user_ids, dtype=object)
        self.items = items.reset_index(drop=True)
        self.name = name
        self.event_weights = resolve_event_weights(event_weights)
        self.meta = dict(meta or {})
        self._user_lookup: pd.Index | None = None
        self._item_lookup: pd.Index | None = None
        self._cache: dict[str, Any] = {}

    # ----------------------------------------------------------------------------------- building
    @classmethod
    def from_frames(
        cls,
        events: pd.DataFrame,
        items: pd.DataFrame | None = None,
        *,
        name: str = "dataset",
        event_weights: Mapping[str, float] | None = None,
        keep_items_without_events: bool = True,
        meta: Mapping[str, Any] | None = None,
    ) -> Dataset:
        """Build from canonical frames (`read_events` / `read_items` output, external string ids).

        `events` rows keep their given order as the tie-break for equal timestamps.
        """
        weights = resolve_event_weights(event_weights)
        catalog = items if items is not None else empty_items()
        catalog = catalog.drop_duplicates("item_id", keep="last")
        event_items = set(events["item_id"].astype(str))
        if keep_items_without_events:
            item_ids = _sorted_ids(event_items | set(catalog["item_id"].astype(str)))
        else:
            item_ids = _sorted_ids(event_items)
            catalog = catalog[catalog["item_id"].astype(str).isin(event_items)]
        user_ids = _sorted_ids(events["user_id"].astype(str))
        user_index = pd.Index(user_ids)
        item_index = pd.Index(item_ids)
        event_types = events["event_type"].astype(str).to_numpy() if len(events) else np.array([], object)
        unknown_types = sorted(set(event_types) - set(weights))
        if unknown_types:
            raise DataFormatError(f"Unknown event type(s) {unknown_types}; expected one of {sorted(weights)}.")
        timestamps = (
            pd.to_datetime(events["timestamp"], utc=True)
            if "timestamp" in events.columns
            else pd.Series(pd.NaT, index=events.index, dtype="datetime64[ns, UTC]")
        )
        interactions = pd.DataFrame(
            {
                "user": user_index.get_indexer(events["user_id"].astype(str)).astype(np.int32),
                "item": item_index.get_indexer(events["item_id"].astype(str)).astype(np.int32),
                "event_type": pd.Categorical(event_types, categories=sorted(weights)),
                "timestamp": timestamps.to_numpy(),
                "value": events["value"].to_numpy(dtype=float)
                if "value" in events.columns
                else np.full(len(events), np.nan),
                "weight": pd.Series(event_types).map(weights).to_numpy(dtype=np.float32),
                "order": np.arange(len(events), dtype=np.int64),
            }
        )
        interactions["timestamp"] = pd.to_datetime(interactions["timestamp"], utc=True)
        table = pd.DataFrame({"item_id": item_ids})
        table = table.merge(catalog.assign(item_id=catalog["item_id"].astype(str)), on="item_id", how="left")
        table = _complete_item_table(table)
        return cls(interactions, user_ids, table, name=name, event_weights=weights, meta=meta)

    def with_interactions(self, interactions: pd.DataFrame, *, name: str | None = None) -> Dataset:
        """The same users, items and catalog with another set of interactions (e.g. a training split)."""
        return Dataset(
            interactions.reset_index(drop=True),
            self.user_ids,
            self.items,
            name=name or self.name,
            event_weights=self.event_weights,
            meta=self.meta,
        )

    def to_frames(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The events (external ids, source order) and the item table, as `from_frames` takes them."""
        frame = self.interactions.sort_values("order", kind="stable")
        events = pd.DataFrame(
            {
                "user_id": self.user_ids[frame["user"].to_numpy()],
                "item_id": self.item_ids[frame["item"].to_numpy()],
                "event_type": frame["event_type"].astype(str).to_numpy(dtype=object),
                "timestamp": frame["timestamp"].to_numpy(),
                "value": frame["value"].to_numpy(dtype=float),
            }
        )
        events["timestamp"] = pd.to_datetime(events["timestamp"], utc=True)
        return events, self.items.copy()

    # ----------------------------------------------------------------------------------- sizes
    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def n_interactions(self) -> int:
        return len(self.interactions)

    @property
    def item_ids(self) -> np.ndarray:
        return self.items["item_id"].to_numpy(dtype=object)

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, users={self.n_users}, items={self.n_items}, "
            f"interactions={self.n_interactions})"
        )

    # ----------------------------------------------------------------------------------- ids
    def user_index(self, user_ids: str | Iterable[str]) -> np.ndarray:
        """Indices of external user ids; raises `UnknownIdError` naming the unknown ones."""
        if self._user_lookup is None:
            self._user_lookup = pd.Index(self.user_ids)
        return _lookup(self._user_lookup, user_ids, "user")

    def item_index(self, item_ids: str | Iterable[str]) -> np.ndarray:
        """Indices of external item ids; raises `UnknownIdError` naming the unknown ones."""
        if self._item_lookup is None:
            self._item_lookup = pd.Index(self.item_ids)
        return _lookup(self._item_lookup, item_ids, "item")

    # ----------------------------------------------------------------------------------- views
    def user_items(self, *, binary: bool = False) -> sp.csr_matrix:
        """The user×item matrix: summed event weights per pair (or 1.0 per pair with `binary`)."""
        key = f"user_items:{binary}"
        if key not in self._cache:
            frame = self.interactions
            data = np.ones(len(frame), np.float32) if binary else frame["weight"].to_numpy(np.float32)
            matrix = sp.csr_matrix(
                (data, (frame["user"].to_numpy(), frame["item"].to_numpy())),
                shape=(self.n_users, self.n_items),
                dtype=np.float32,
            )
            matrix.sum_duplicates()
            if binary:
                matrix.data[:] = 1.0
            matrix.sort_indices()
            self._cache[key] = matrix
        return self._cache[key]

    def time_order(self) -> np.ndarray:
        """Row positions of `interactions` sorted by user, then time, then source order."""
        frame = self.interactions
        stamps = frame["timestamp"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
        return np.lexsort((frame["order"].to_numpy(), stamps, frame["user"].to_numpy()))

    def sequences(self) -> list[np.ndarray]:
        """Each user's item indices in time order (events, not distinct items)."""
        if "sequences" not in self._cache:
            order = self.time_order()
            users = self.interactions["user"].to_numpy()[order]
            items = self.interactions["item"].to_numpy()[order].astype(np.int64)
            bounds = np.searchsorted(users, np.arange(self.n_users + 1))
            self._cache["sequences"] = [items[bounds[u] : bounds[u + 1]] for u in range(self.n_users)]
        return self._cache["sequences"]

    # ----------------------------------------------------------------------------------- storage
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the data set to a folder (Parquet + JSON), atomically: a failed save leaves any old one."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # a folder of the user's umask, as any other they create (mkdtemp's would be 0700)
        staging = path.parent / f".{path.name}.{uuid.uuid4().hex}"
        staging.mkdir()
        try:
            self.interactions.to_parquet(staging / "interactions.parquet", index=False)
            self.items.to_parquet(staging / "items.parquet", index=False)
            pd.DataFrame({"user_id": self.user_ids.astype(str)}).to_parquet(staging / "users.parquet", index=False)
            meta = {
                "format_version": FORMAT_VERSION,
                "name": self.name,
                "n_users": self.n_users,
                "n_items": self.n_items,
                "n_interactions": self.n_interactions,
                "event_weights": self.event_weights,
                "meta": self.meta,
            }
            (staging / "dataset.json").write_text(json.dumps(meta, indent=2, default=str))
            if path.exists():
                backup = path.with_name(f".{path.name}.old")
                if backup.exists():
                    shutil.rmtree(backup)
                os.replace(path, backup)
                os.replace(staging, path)
                shutil.rmtree(backup)
            else:
                os.replace(staging, path)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Dataset:
        path = Path(path)
        meta_file = path / "dataset.json"
        if not meta_file.is_file():
            raise DatasetNotFoundError(f"{path} is not a shelfwise data set folder (no dataset.json).")
        meta = json.loads(meta_file.read_text())
        if meta.get("format_version") != FORMAT_VERSION:
            raise DataFormatError(
                f"{path}: data set format version {meta.get('format_version')} is not supported "
                f"(expected {FORMAT_VERSION}); ingest the data again."
            )
        interactions = pd.read_parquet(path / "interactions.parquet")
        items = pd.read_parquet(path / "items.parquet")
        items["tags"] = items["tags"].map(lambda tags: [] if tags is None else list(tags))
        users = pd.read_parquet(path / "users.parquet")["user_id"].to_numpy(dtype=object)
        return cls(
            interactions,
            users,
            _complete_item_table(items),
            name=meta.get("name", path.name),
            event_weights=meta.get("event_weights"),
            meta=meta.get("meta"),
        )


def _complete_item_table(table: pd.DataFrame) -> pd.DataFrame:
    """Give the item table every schema column with its proper type and default."""
    table = table.copy()
    for column in ITEM_COLUMNS:
        if column not in table.columns:
            table[column] = None
    table["item_id"] = table["item_id"].astype(str).astype(object)
    for column in ("title", "description", "category", "brand"):
        table[column] = table[column].astype(object).where(table[column].notna(), None)
    table["price"] = pd.to_numeric(table["price"], errors="coerce").astype(float)
    table["tags"] = table["tags"].map(lambda tags: list(tags) if isinstance(tags, (list, tuple, np.ndarray)) else [])
    table["in_stock"] = (
        table["in_stock"]
        .map(lambda v: True if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)) else bool(v))
        .astype(bool)
    )
    table["created_at"] = pd.to_datetime(table["created_at"], utc=True)
    return table[list(ITEM_COLUMNS) + [c for c in table.columns if c not in ITEM_COLUMNS]]


def _lookup(index: pd.Index, ids: str | Iterable[str], kind: str) -> np.ndarray:
    single = isinstance(ids, str)
    values = [ids] if single else [str(i) for i in ids]
    positions = index.get_indexer(values)
    if (positions < 0).any():
        unknown = [v for v, p in zip(values, positions, strict=True) if p < 0]
        shown = ", ".join(repr(u) for u in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
        raise UnknownIdError(f"Unknown {kind} id(s): {shown}")
    return positions[0] if single else positions
