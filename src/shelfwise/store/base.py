"""The `Store` protocol and the records it keeps."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class EventRecord:
    """One shopper event as stored: times are seconds since the epoch (UTC)."""

    user_id: str
    item_id: str
    event_type: str
    timestamp: float
    value: float | None = None
    #: The sender's id for the event: one id is stored once, however often it is sent.
    event_id: str | None = None


@dataclass(frozen=True)
class ItemRecord:
    """One catalog item as stored (``price`` and ``created_at`` may be unknown)."""

    item_id: str
    title: str = ""
    description: str = ""
    category: str = ""
    brand: str = ""
    price: float | None = None
    tags: str = ""
    in_stock: bool = True
    created_at: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class DeletionReport:
    """What `Store.delete_user` removed."""

    user_id: str
    events: int = 0
    profile: int = 0
    extra: dict[str, int] = field(default_factory=dict)
    #: The removed events as (event number, item id): what replicas stop counting.
    removed: list[tuple[int, str]] = field(default_factory=list, repr=False)

    @property
    def found(self) -> bool:
        return bool(self.events or self.profile)


@dataclass(frozen=True)
class UserSummary:
    """A shopper as the ``users`` table keeps them: first and last event time and the event count."""

    user_id: str
    first_seen: float
    last_seen: float
    events: int

    def as_dict(self) -> dict:
        return asdict(self)


def user_hash(user_id: str) -> str:
    """How the change feed names a deleted shopper (the id itself is not kept there)."""
    return hashlib.sha256(user_id.encode()).hexdigest()


@dataclass(frozen=True)
class Change:
    """One entry of the store's change feed: what changed (``items``: the items `payload["ids"]`
    were added or replaced; ``user_deleted``: the shopper whose id hashes to
    `payload["user_sha256"]` was deleted; ``reload``: the model folder `payload["model_dir"]` is
    served from now on), and which store instance (`origin`) wrote it."""

    id: int
    kind: str
    payload: dict
    origin: str
    created_at: float


@runtime_checkable
class Store(Protocol):
    """Events, catalog items and shoppers. Every write is committed before the call returns."""

    url: str
    #: True where a write is a call into this process (SQLite's file); False where it is a round trip
    #: to a server whose processes share the machine's cores (PostgreSQL).
    in_process: bool

    def schema_version(self) -> int: ...

    # events and shoppers
    def add_events(self, events: Iterable[EventRecord]) -> int:
        """Store events in one transaction; those whose `event_id` is stored already (or repeats in
        `events`) are skipped. Returns how many were stored."""
        ...

    def add_new_events(self, events: list[EventRecord], *, wait: bool = True) -> list[EventRecord]:
        """`add_events`, returning the events it stored. `wait` false: raise `WriterBusy` (storing
        nothing) at once where another writer of this instance holds its lock, and after a brief wait
        (`store.connect.BRIEF_WAIT_MS`) where another process holds the database's."""
        ...

    def bulk_load_events(
        self,
        key: str,
        records: Iterable[EventRecord],
        *,
        total: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Load a training set's events into an empty store as the resumable job `key` (nothing for
        a finished job or a store with a history of its own); returns how many this call stored."""
        ...

    def user_events(self, user_id: str, limit: int | None = None) -> list[EventRecord]:
        """A shopper's events, oldest first (the most recent `limit` where given)."""
        ...

    def iter_events(self, batch_size: int = 50_000) -> Iterator[list[EventRecord]]: ...

    def has_user(self, user_id: str) -> bool: ...

    def user_count(self) -> int: ...

    def user_summary(self, user_id: str) -> UserSummary | None: ...

    def list_users(self, prefix: str = "", limit: int = 20) -> list[UserSummary]:
        """Shoppers whose id starts with `prefix`, most recently active first."""
        ...

    def event_count(self) -> int: ...

    def item_event_counts(self) -> dict[str, int]: ...

    def item_event_counts_after(self, after_id: int) -> tuple[dict[str, int], int]:
        """Event counts per item of the events numbered after `after_id` (0: all), and the highest
        number among them (`after_id` when there are none)."""
        ...

    def delete_user(self, user_id: str) -> DeletionReport: ...

    # segments
    def replace_segments(self, rows: list[dict], assignments: dict[str, int]) -> None: ...

    def list_segments(self) -> list[dict]: ...

    def segment_members(self, segment_id: int, *, limit: int = 100, offset: int = 0) -> list[str]: ...

    def user_segment(self, user_id: str) -> int | None: ...

    # catalog
    def upsert_items(self, items: Iterable[ItemRecord]) -> tuple[int, int]:
        """Insert or replace items; returns (created, updated)."""
        ...

    def get_item(self, item_id: str) -> ItemRecord | None: ...

    def all_items(self) -> list[ItemRecord]: ...

    def item_count(self) -> int: ...

    def get_items(self, item_ids: list[str]) -> list[ItemRecord]:
        """The items of those ids the catalog holds (in no particular order)."""
        ...

    # the change feed that replicas follow (catalog writes and deletions write to it themselves)
    origin: str

    def record_change(self, kind: str, payload: dict) -> int:
        """Append a change (as this store instance's `origin`); returns its id."""
        ...

    def changes_after(self, change_id: int, limit: int = 1000) -> list[Change]:
        """The changes with an id above `change_id`, oldest first."""
        ...

    def last_change_id(self) -> int: ...

    def wait_for_change(self, timeout: float) -> None:
        """Return when a change may have been recorded, or after `timeout` seconds."""
        ...

    def prune_changes(self, older_than: float) -> int:
        """Drop changes recorded before the time `older_than`; returns how many."""
        ...

    def close(self) -> None: ...
