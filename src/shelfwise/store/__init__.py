"""Persistence of events, the catalog and shoppers behind one protocol, opened by URL.

``sqlite:///path`` (the default; WAL mode, created on first use) and ``postgresql://…`` both go
through SQLAlchemy and share one versioned schema with migrations (`shelfwise.store.sql`).
"""

from shelfwise.store.base import Change, DeletionReport, EventRecord, ItemRecord, Store, UserSummary, user_hash
from shelfwise.store.connect import default_store_url
from shelfwise.store.schema import SCHEMA_VERSION
from shelfwise.store.sql import SQLStore, open_store

__all__ = [
    "SCHEMA_VERSION",
    "Change",
    "DeletionReport",
    "EventRecord",
    "ItemRecord",
    "SQLStore",
    "Store",
    "UserSummary",
    "default_store_url",
    "open_store",
    "user_hash",
]
