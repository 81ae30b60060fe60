"""Loading a training set's events into an empty store as one resumable job.

The events table's secondary indexes are dropped first and created once after the last row (one
sort instead of millions of index updates), and the table analysed; rows are committed in chunks, each with the job's
progress in the same transaction (`bulk_loads`), so a load cut short (a crash, kill -9, a full disk)
goes on from the last committed chunk when it is run again. Several processes starting on one empty
store at once do not load it twice: the first one owns the job and the others wait for it, taking it
over if its owner has not written for `STALE_SECONDS`.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shelfwise.store.base import EventRecord
from shelfwise.store.schema import EVENT_INDEXES, bulk_loads, events

logger = logging.getLogger(__name__)

#: Events committed per transaction.
CHUNK = 50_000
#: A job whose owner has not written for this long is taken over.
STALE_SECONDS = 120.0


class BulkTarget(Protocol):
    """What a load needs of the store it fills (`store.sql.SQLStore`)."""

    db: sa.Engine
    origin: str

    @property
    def lock(self) -> threading.Lock: ...

    def add_events_in(self, conn: Connection, records: Iterable[EventRecord]) -> int: ...


def load_events(
    store: BulkTarget,
    key: str,
    records: Iterable[EventRecord],
    *,
    total: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Run (or finish) the bulk load `key` of `records` (always the same events in the same order for
    one key). Nothing happens for a finished job, or where the store holds events of no job (it has
    a history already). Returns how many events this call stored."""
    while True:
        claim = _claim(store, key, total)
        if claim is None:
            return 0
        if claim >= 0:
            break
        time.sleep(1.0)  # another process is loading: wait for it (or for it to go stale)
    done = claim
    if done:
        logger.info("store: resuming the load of %s after %d events", key, done)
    stored = 0
    iterator = itertools.islice(iter(records), done, None)
    while chunk := list(itertools.islice(iterator, CHUNK)):
        with store.lock, store.db.begin() as conn:
            store.add_events_in(conn, chunk)
            conn.execute(
                bulk_loads.update()
                .where(bulk_loads.c.key == key)
                .values(done=bulk_loads.c.done + len(chunk), updated_at=time.time())
            )
        stored += len(chunk)
        if progress is not None:
            progress(done + stored)
    with store.lock, store.db.begin() as conn:
        for statement in EVENT_INDEXES.values():
            conn.execute(sa.text(statement))
        conn.execute(sa.text("ANALYZE events"))  # the planner's statistics now, not from a later autovacuum
        conn.execute(bulk_loads.update().where(bulk_loads.c.key == key).values(finished=True, updated_at=time.time()))
    return stored


def _claim(store: BulkTarget, key: str, total: int | None) -> int | None:
    """Own the job `key` and drop the events' secondary indexes: how many events it has committed;
    None when there is nothing to load; -1 while another process owns a live job."""
    now = time.time()
    with store.lock, store.db.begin() as conn:
        row = conn.execute(sa.select(bulk_loads).where(bulk_loads.c.key == key)).mappings().first()
        if row is not None and row["finished"]:
            return None
        if row is None:
            if conn.execute(sa.select(events.c.id).limit(1)).first() is not None:
                return None  # a store with a history of its own
            try:
                with conn.begin_nested():
                    conn.execute(
                        bulk_loads.insert().values(
                            key=key, owner=store.origin, done=0, total=total, finished=False, updated_at=now
                        )
                    )
            except sa.exc.IntegrityError:
                return -1  # another process claimed it a moment ago
            done = 0
        elif row["owner"] != store.origin and now - row["updated_at"] < STALE_SECONDS:
            return -1
        else:
            conn.execute(bulk_loads.update().where(bulk_loads.c.key == key).values(owner=store.origin, updated_at=now))
            done = int(row["done"])
        for name in EVENT_INDEXES:
            conn.execute(sa.text(f"DROP INDEX IF EXISTS {name}"))
        return done
