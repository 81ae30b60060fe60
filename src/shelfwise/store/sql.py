"""The SQL store (SQLite or PostgreSQL through SQLAlchemy Core) with a versioned schema.

Opening a store migrates it to `SCHEMA_VERSION` (`shelfwise.store.schema`); its connections, and
how SQLite keeps a committed write, are `shelfwise.store.connect`'s.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import nullcontext
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine

from shelfwise.errors import ShelfwiseError, WriterBusy
from shelfwise.store.base import Change, DeletionReport, EventRecord, ItemRecord, UserSummary
from shelfwise.store.bulk import load_events
from shelfwise.store.connect import (
    brief_lock_waits,
    create_engine,
    create_read_engine,
    default_store_url,
    fetch_all,
    normalise,
)
from shelfwise.store.schema import (
    MIGRATIONS,
    changes,
    events,
    items,
    schema_migrations,
    segments,
    user_segments,
    users,
)

#: `add_events` turns this many records into rows at a time.
_EVENT_CHUNK = 100_000

if TYPE_CHECKING:
    import psycopg

logger = logging.getLogger(__name__)

#: How often `add_events` starts again when another process stored one of its event ids meanwhile.
_RETRIES = 3
#: The PostgreSQL channel a recorded change is announced on (`wait_for_change` listens to it).
CHANGES_CHANNEL = "shelfwise_changes"
#: A catalog write names at most this many item ids per change.
_IDS_PER_CHANGE = 5_000


def open_store(url: str | None = None) -> SQLStore:
    """Open (creating and migrating on first use) the store at `url` (default: `default_store_url`)."""
    return SQLStore(url or default_store_url())


class SQLStore:
    """`Store` over SQLAlchemy: SQLite (default) or PostgreSQL."""

    def __init__(self, url: str) -> None:
        parsed = normalise(url)
        self.url = parsed.render_as_string(hide_password=True)
        self.backend = parsed.get_backend_name()
        self.in_process = self.backend == "sqlite"
        #: This instance's name in the change feed: a replica skips the changes it wrote itself.
        self.origin = uuid.uuid4().hex
        self._libpq_url = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
        self._listener: psycopg.Connection | None = None  # PostgreSQL: LISTENs to `CHANGES_CHANNEL`
        self._lock = threading.Lock()  # SQLite allows one writer; serialise ours instead of retrying
        self._upsert: sa.Insert | None = None
        self.db: Engine = create_engine(parsed)
        self._reads = create_read_engine(parsed, self.db, f"shelfwise-reads-{self.origin}")
        try:
            self.migrate()
        except sa.exc.OperationalError as exc:
            raise ShelfwiseError(f"Cannot open the store at {self.url}: {exc.orig}") from None

    # ------------------------------------------------------------------------------- schema
    def migrate(self) -> list[int]:
        """Apply the migrations this database lacks; returns the versions applied."""
        applied: list[int] = []
        with self._lock, self.db.begin() as conn:
            if self.backend == "postgresql":  # one migrator at a time across processes
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(74211)"))
            schema_migrations.create(conn, checkfirst=True)
            done = set(conn.execute(sa.select(schema_migrations.c.version)).scalars())
            for version, description, upgrade in MIGRATIONS:
                if version in done:
                    continue
                upgrade(conn)
                conn.execute(
                    schema_migrations.insert().values(version=version, description=description, applied_at=time.time())
                )
                applied.append(version)
                logger.info("store %s: applied migration %d (%s)", self.url, version, description)
        return applied

    def schema_version(self) -> int:
        with self.db.connect() as conn:
            return int(conn.execute(sa.select(sa.func.max(schema_migrations.c.version))).scalar() or 0)

    def _insert(self, table: sa.Table):
        if self.backend == "sqlite":
            return sqlite_insert(table)
        return postgresql_insert(table)

    # ------------------------------------------------------------------------------- events
    def add_events(self, records: Iterable[EventRecord]) -> int:
        """Add events (and their shoppers' activity) in one transaction, skipping those whose `event_id`
        is stored already or repeats among `records`; returns how many were stored. `records` is read in
        chunks of `_EVENT_CHUNK`, so a generator of millions of events never sits in memory at once (a
        list is tried again when another process stored one of its event ids in the meantime)."""
        return self._add(records, None)

    def add_events_in(self, conn: Connection, records: Iterable[EventRecord]) -> int:
        """`add_events` inside the caller's transaction (which holds `lock`)."""
        return self._add_events(conn, iter(records), None)

    def bulk_load_events(
        self,
        key: str,
        records: Iterable[EventRecord],
        *,
        total: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Load a training set's events into an empty store as the resumable job `key` (see
        `store.bulk`); returns how many events this call stored."""
        return load_events(self, key, records, total=total, progress=progress)

    @property
    def lock(self) -> threading.Lock:
        """Held by this instance's writers (SQLite allows one writer at a time)."""
        return self._lock

    def add_new_events(self, records: list[EventRecord], *, wait: bool = True) -> list[EventRecord]:
        """`add_events`, returning the events it stored (`wait`: as `Store.add_new_events`)."""
        stored: list[EventRecord] = []
        self._add(records, stored, wait)
        return stored

    def _add(self, records: Iterable[EventRecord], stored: list[EventRecord] | None, wait: bool = True) -> int:
        for attempt in range(_RETRIES):
            if not self._lock.acquire(blocking=wait):
                raise WriterBusy("another writer holds the store's lock")
            try:
                with self.db.begin() as conn, brief_lock_waits(conn) if not wait else nullcontext():
                    if stored is not None:
                        stored.clear()
                    return self._add_events(conn, iter(records), stored)
            except sa.exc.IntegrityError:
                if not isinstance(records, (list, tuple)) or attempt == _RETRIES - 1:
                    raise
            finally:
                self._lock.release()
        raise AssertionError("unreachable")

    @staticmethod
    def _known_event_ids(conn: Connection, event_ids: list[str]) -> set[str]:
        known: set[str] = set()
        for start in range(0, len(event_ids), 5_000):
            chunk = event_ids[start : start + 5_000]
            known.update(conn.execute(sa.select(events.c.event_id).where(events.c.event_id.in_(chunk))).scalars())
        return known

    def _add_events(self, conn: Connection, iterator: Iterator[EventRecord], stored: list | None) -> int:
        upsert = self._user_upsert()
        now = time.time()
        total = 0
        seen: set[str] = set()
        while chunk := list(itertools.islice(iterator, _EVENT_CHUNK)):
            given = [r.event_id for r in chunk if r.event_id is not None]
            if given:
                seen |= self._known_event_ids(conn, given)
                fresh = []
                for record in chunk:
                    if record.event_id is None or record.event_id not in seen:
                        fresh.append(record)
                        if record.event_id is not None:
                            seen.add(record.event_id)
                chunk = fresh
            if stored is not None:
                stored.extend(chunk)
            if chunk:
                rows = [
                    {
                        "user_id": r.user_id,
                        "item_id": r.item_id,
                        "event_type": r.event_type,
                        "timestamp": float(r.timestamp),
                        "value": None if r.value is None else float(r.value),
                        "received_at": now,
                        "event_id": r.event_id,
                    }
                    for r in chunk
                ]
                per_user: dict[str, list[float]] = {}
                for r in chunk:
                    per_user.setdefault(r.user_id, []).append(float(r.timestamp))
                user_rows = [
                    {"user_id": u, "first_seen": min(t), "last_seen": max(t), "events": len(t)}
                    for u, t in per_user.items()
                ]
                for start in range(0, len(rows), 10_000):
                    conn.execute(events.insert(), rows[start : start + 10_000])
                for start in range(0, len(user_rows), 10_000):
                    conn.execute(upsert, user_rows[start : start + 10_000])
                total += len(rows)
        return total

    def _user_upsert(self):
        """The shoppers' activity upsert, built once (building it cost a third of storing an event)."""
        if self._upsert is not None:
            return self._upsert
        upsert = self._insert(users)
        upsert = upsert.on_conflict_do_update(
            index_elements=[users.c.user_id],
            set_={
                "first_seen": sa.func.min(users.c.first_seen, upsert.excluded.first_seen)
                if self.backend == "sqlite"
                else sa.func.least(users.c.first_seen, upsert.excluded.first_seen),
                "last_seen": sa.func.max(users.c.last_seen, upsert.excluded.last_seen)
                if self.backend == "sqlite"
                else sa.func.greatest(users.c.last_seen, upsert.excluded.last_seen),
                "events": users.c.events + upsert.excluded.events,
            },
        )
        self._upsert = upsert
        return upsert

    def user_events(self, user_id: str, limit: int | None = None) -> list[EventRecord]:
        # the hottest query of the service: plain SQL on the driver's own cursor (`fetch_all`: 0.3 ms
        # on SQLite where `exec_driver_sql` took 0.5, and that a third of a Core select; on PostgreSQL
        # `create_read_engine`'s pool: 0.08-0.14 ms of CPU where the main pool's took 0.28-0.35)
        mark = "?" if self.db.dialect.paramstyle == "qmark" else "%s"
        query = (
            "SELECT user_id, item_id, event_type, timestamp, value FROM events "
            f"WHERE user_id = {mark} ORDER BY timestamp DESC, id DESC"
        )
        params: tuple = (user_id,)
        if limit is not None:
            query += f" LIMIT {mark}"
            params = (user_id, int(limit))
        return [EventRecord(*row) for row in reversed(fetch_all(self._reads, query, params))]

    def iter_events(self, batch_size: int = 50_000) -> Iterator[list[EventRecord]]:
        last = 0
        columns = (events.c.id, events.c.user_id, events.c.item_id, events.c.event_type, events.c.timestamp)
        while True:
            query = sa.select(*columns, events.c.value).where(events.c.id > last).order_by(events.c.id)
            with self.db.connect() as conn:
                rows = conn.execute(query.limit(batch_size)).all()
            if not rows:
                return
            last = rows[-1][0]
            yield [EventRecord(*row[1:]) for row in rows]

    def has_user(self, user_id: str) -> bool:
        with self.db.connect() as conn:
            found = conn.execute(sa.select(users.c.user_id).where(users.c.user_id == user_id)).first()
        return found is not None

    def user_count(self) -> int:
        with self.db.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(users)).scalar() or 0)

    def user_summary(self, user_id: str) -> UserSummary | None:
        query = sa.select(users.c.user_id, users.c.first_seen, users.c.last_seen, users.c.events)
        with self.db.connect() as conn:
            row = conn.execute(query.where(users.c.user_id == user_id)).first()
        return None if row is None else UserSummary(row[0], float(row[1]), float(row[2]), int(row[3]))

    def list_users(self, prefix: str = "", limit: int = 20) -> list[UserSummary]:
        query = sa.select(users.c.user_id, users.c.first_seen, users.c.last_seen, users.c.events)
        if prefix:
            query = query.where(users.c.user_id.startswith(prefix, autoescape=True))
        query = query.order_by(users.c.last_seen.desc(), users.c.user_id).limit(int(limit))
        with self.db.connect() as conn:
            rows = conn.execute(query).all()
        return [UserSummary(r[0], float(r[1]), float(r[2]), int(r[3])) for r in rows]

    def event_count(self) -> int:
        with self.db.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(events)).scalar() or 0)

    def item_event_counts(self) -> dict[str, int]:
        return self.item_event_counts_after(0)[0]

    def item_event_counts_after(self, after_id: int) -> tuple[dict[str, int], int]:
        query = sa.select(events.c.item_id, sa.func.count(), sa.func.max(events.c.id))
        if after_id:  # a range of the primary key, not a scan of every event
            query = query.where(events.c.id > int(after_id))
        with self.db.connect() as conn:
            rows = conn.execute(query.group_by(events.c.item_id)).all()
        return {item: int(count) for item, count, _ in rows}, max((int(r[2]) for r in rows), default=int(after_id))

    def delete_user(self, user_id: str) -> DeletionReport:
        with self._lock, self.db.begin() as conn:
            deleted = events.delete().where(events.c.user_id == user_id).returning(events.c.id, events.c.item_id)
            removed = [(int(number), str(item)) for number, item in conn.execute(deleted)]
            removed_profile = conn.execute(users.delete().where(users.c.user_id == user_id)).rowcount
            removed_segment = conn.execute(user_segments.delete().where(user_segments.c.user_id == user_id)).rowcount
        extra = {"segment": int(removed_segment)} if removed_segment else {}
        return DeletionReport(user_id, len(removed), int(removed_profile), extra, removed)

    # ------------------------------------------------------------------------------- segments
    def replace_segments(self, rows: list[dict], assignments: dict[str, int]) -> None:
        """Replace every segment and assignment in one transaction. `rows`: segment_id, name, size,
        summary (a dict stored as JSON) and created_at."""
        segment_rows = [{**row, "summary": json.dumps(row["summary"])} for row in rows]
        pairs = [{"user_id": user, "segment_id": int(segment)} for user, segment in assignments.items()]
        with self._lock, self.db.begin() as conn:
            conn.execute(user_segments.delete())
            conn.execute(segments.delete())
            if segment_rows:
                conn.execute(segments.insert(), segment_rows)
            for start in range(0, len(pairs), 10_000):
                conn.execute(user_segments.insert(), pairs[start : start + 10_000])

    def list_segments(self) -> list[dict]:
        with self.db.connect() as conn:
            rows = conn.execute(sa.select(segments).order_by(segments.c.segment_id)).mappings().all()
        return [{**row, "summary": json.loads(row["summary"])} for row in rows]

    def segment_members(self, segment_id: int, *, limit: int = 100, offset: int = 0) -> list[str]:
        query = (
            sa.select(user_segments.c.user_id)
            .where(user_segments.c.segment_id == int(segment_id))
            .order_by(user_segments.c.user_id)
            .limit(int(limit))
            .offset(int(offset))
        )
        with self.db.connect() as conn:
            return [row[0] for row in conn.execute(query)]

    def user_segment(self, user_id: str) -> int | None:
        query = sa.select(user_segments.c.segment_id).where(user_segments.c.user_id == user_id)
        with self.db.connect() as conn:
            found = conn.execute(query).first()
        return None if found is None else int(found[0])

    # ------------------------------------------------------------------------------- catalog
    def upsert_items(self, records: Iterable[ItemRecord]) -> tuple[int, int]:
        now = time.time()
        rows = {r.item_id: {**r.as_dict(), "updated_at": now} for r in records}
        if not rows:
            return 0, 0
        ids = list(rows)
        with self._lock, self.db.begin() as conn:
            existing: set[str] = set()
            for start in range(0, len(ids), 5_000):
                chunk = ids[start : start + 5_000]
                existing.update(conn.execute(sa.select(items.c.item_id).where(items.c.item_id.in_(chunk))).scalars())
            statement = self._insert(items)
            statement = statement.on_conflict_do_update(
                index_elements=[items.c.item_id],
                set_={c.name: statement.excluded[c.name] for c in items.columns if c.name != "item_id"},
            )
            values = list(rows.values())
            for start in range(0, len(values), 5_000):
                conn.execute(statement, values[start : start + 5_000])
            for start in range(0, len(ids), _IDS_PER_CHANGE):
                self._record(conn, "items", {"ids": ids[start : start + _IDS_PER_CHANGE]})
        return len(ids) - len(existing), len(existing)

    def get_item(self, item_id: str) -> ItemRecord | None:
        with self.db.connect() as conn:
            row = conn.execute(sa.select(*_item_columns()).where(items.c.item_id == item_id)).first()
        return None if row is None else ItemRecord(*row)

    def all_items(self) -> list[ItemRecord]:
        with self.db.connect() as conn:
            return [ItemRecord(*row) for row in conn.execute(sa.select(*_item_columns()).order_by(items.c.item_id))]

    def item_count(self) -> int:
        with self.db.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(items)).scalar() or 0)

    def get_items(self, item_ids: list[str]) -> list[ItemRecord]:
        found: list[ItemRecord] = []
        with self.db.connect() as conn:
            for start in range(0, len(item_ids), 5_000):
                chunk = item_ids[start : start + 5_000]
                query = sa.select(*_item_columns()).where(items.c.item_id.in_(chunk))
                found.extend(ItemRecord(*row) for row in conn.execute(query))
        return found

    # ------------------------------------------------------------------------------- change feed
    def _record(self, conn: Connection, kind: str, payload: dict) -> int:
        """Append a change inside the caller's transaction (announced when it commits)."""
        row = {"kind": kind, "payload": json.dumps(payload), "origin": self.origin, "created_at": time.time()}
        change_id = int(conn.execute(changes.insert().values(**row).returning(changes.c.id)).scalar_one())
        if self.backend == "postgresql":
            conn.execute(sa.select(sa.func.pg_notify(CHANGES_CHANNEL, str(change_id))))
        return change_id

    def record_change(self, kind: str, payload: dict) -> int:
        with self._lock, self.db.begin() as conn:
            return self._record(conn, kind, payload)

    def changes_after(self, change_id: int, limit: int = 1000) -> list[Change]:
        query = sa.select(changes).where(changes.c.id > int(change_id)).order_by(changes.c.id).limit(int(limit))
        with self.db.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [Change(int(r["id"]), r["kind"], json.loads(r["payload"]), r["origin"], r["created_at"]) for r in rows]

    def last_change_id(self) -> int:
        with self.db.connect() as conn:
            return int(conn.execute(sa.select(sa.func.max(changes.c.id))).scalar() or 0)

    def wait_for_change(self, timeout: float) -> None:
        if self.backend != "postgresql":  # SQLite has no notifications: the caller polls
            time.sleep(timeout)
            return
        import psycopg

        try:
            if self._listener is None:
                self._listener = psycopg.connect(self._libpq_url, autocommit=True)
                self._listener.execute(f"LISTEN {CHANGES_CHANNEL}")
            for _ in self._listener.notifies(timeout=timeout, stop_after=1):
                pass
        except psycopg.Error as exc:  # the server restarted or the connection dropped: poll, reconnect later
            logger.warning("store %s: change notifications lost (%s); polling", self.url, exc)
            self._close_listener()
            time.sleep(timeout)

    def prune_changes(self, older_than: float) -> int:
        with self._lock, self.db.begin() as conn:
            return int(conn.execute(changes.delete().where(changes.c.created_at < float(older_than))).rowcount)

    def _close_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            try:
                listener.close()
            except Exception:  # closing a broken connection: nothing left to do
                logger.debug("closing the change listener failed", exc_info=True)

    def close(self) -> None:
        self._close_listener()
        self.db.dispose()
        self._reads.dispose()

    def __enter__(self) -> SQLStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SQLStore({self.url!r})"


def _item_columns() -> list[sa.Column]:
    names = ("item_id", "title", "description", "category", "brand", "price", "tags", "in_stock", "created_at")
    return [items.c[name] for name in names]
