"""The store's tables and the numbered migrations that create them.

Migrations are numbered functions applied in order inside one transaction each; the table
``schema_migrations`` records which ran. Append a migration to change the schema, never edit one.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

metadata = sa.MetaData()

schema_migrations = sa.Table(
    "schema_migrations",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("applied_at", sa.Float, nullable=False),
)
items = sa.Table(
    "items",
    metadata,
    sa.Column("item_id", sa.Text, primary_key=True),
    sa.Column("title", sa.Text, nullable=False, default=""),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("category", sa.Text, nullable=False, default=""),
    sa.Column("brand", sa.Text, nullable=False, default=""),
    sa.Column("price", sa.Float, nullable=True),
    sa.Column("tags", sa.Text, nullable=False, default=""),
    sa.Column("in_stock", sa.Boolean, nullable=False, default=True),
    sa.Column("created_at", sa.Float, nullable=True),
    sa.Column("updated_at", sa.Float, nullable=False),
)
events = sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("user_id", sa.Text, nullable=False),
    sa.Column("item_id", sa.Text, nullable=False),
    sa.Column("event_type", sa.Text, nullable=False),
    sa.Column("timestamp", sa.Float, nullable=False),
    sa.Column("value", sa.Float, nullable=True),
    sa.Column("received_at", sa.Float, nullable=False),
    sa.Column("event_id", sa.Text, nullable=True),
)
users = sa.Table(
    "users",
    metadata,
    sa.Column("user_id", sa.Text, primary_key=True),
    sa.Column("first_seen", sa.Float, nullable=False),
    sa.Column("last_seen", sa.Float, nullable=False),
    sa.Column("events", sa.BigInteger, nullable=False, default=0),
)
segments = sa.Table(
    "segments",
    metadata,
    sa.Column("segment_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("summary", sa.Text, nullable=False),  # JSON: keywords, categories
    sa.Column("created_at", sa.Float, nullable=False),
)
user_segments = sa.Table(
    "user_segments",
    metadata,
    sa.Column("user_id", sa.Text, primary_key=True),
    sa.Column("segment_id", sa.Integer, nullable=False),
)
changes = sa.Table(
    "changes",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("kind", sa.Text, nullable=False),  # items, user_deleted, reload
    sa.Column("payload", sa.Text, nullable=False),  # JSON
    sa.Column("origin", sa.Text, nullable=False),  # the store instance (replica) that wrote it
    sa.Column("created_at", sa.Float, nullable=False),
)
bulk_loads = sa.Table(
    "bulk_loads",
    metadata,
    sa.Column("key", sa.Text, primary_key=True),  # the job: which training set's events
    sa.Column("owner", sa.Text, nullable=False),  # the store instance loading it
    sa.Column("done", sa.BigInteger, nullable=False),  # events committed so far, in the job's order
    sa.Column("total", sa.BigInteger, nullable=True),
    sa.Column("finished", sa.Boolean, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)
#: The events table's secondary indexes (as migrations 1 and 2 create them): a bulk load drops them
#: first and creates them once, after the last row.
EVENT_INDEXES = {
    "ix_events_user_time": "CREATE INDEX IF NOT EXISTS ix_events_user_time ON events (user_id, timestamp, id)",
    "ix_events_item": "CREATE INDEX IF NOT EXISTS ix_events_item ON events (item_id)",
}
# Indexes are created by the migrations (plain DDL, so a migration never changes once released).


def _v1(conn: Connection) -> None:
    for table in (items, events, users):
        table.create(conn)
    conn.execute(sa.text("CREATE INDEX ix_events_user_time ON events (user_id, timestamp, id)"))


def _v2(conn: Connection) -> None:
    conn.execute(sa.text("CREATE INDEX ix_events_item ON events (item_id)"))


def _v3(conn: Connection) -> None:
    for table in (segments, user_segments):
        table.create(conn)
    conn.execute(sa.text("CREATE INDEX ix_user_segments_segment ON user_segments (segment_id, user_id)"))


def _v4(conn: Connection) -> None:
    # version 1 creates `events` from the table above, which has the column from version 4 on
    if "event_id" not in {c["name"] for c in sa.inspect(conn).get_columns("events")}:
        conn.execute(sa.text("ALTER TABLE events ADD COLUMN event_id TEXT"))
    conn.execute(sa.text("CREATE UNIQUE INDEX ux_events_event_id ON events (event_id)"))


def _v5(conn: Connection) -> None:
    changes.create(conn)
    conn.execute(sa.text("CREATE INDEX ix_changes_created ON changes (created_at)"))


def _v6(conn: Connection) -> None:
    bulk_loads.create(conn)


#: (version, description, upgrade) in order; append, never edit, to change the schema.
MIGRATIONS: tuple[tuple[int, str, Callable[[Connection], None]], ...] = (
    (1, "items, events and users tables; events by shopper and time", _v1),
    (2, "events by item (popularity, catalog maintenance)", _v2),
    (3, "shopper segments and each shopper's segment", _v3),
    (4, "the sender's event id, stored once (safe retries)", _v4),
    (5, "a numbered feed of catalog, shopper and model changes that every replica follows", _v5),
    (6, "resumable bulk loads of a training set's events", _v6),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]
