"""Replicas over one store: each engine follows the store's change feed and applies what the other
replicas (and worker processes) wrote: catalog items added or replaced, shoppers deleted, the model
folder reloaded. Events need nothing: every answer reads the shopper's events from the store. Event
counts (popularity) read the events added since the last read now and then, less those a deletion
removed (`popularity.EventCounts`).

A change is applied idempotently (an item re-read from the store and published again changes
nothing), so a replica that starts reading the feed a little early, or replays a change, answers
the same.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from shelfwise.engine.popularity import Popularity
from shelfwise.store import Change

if TYPE_CHECKING:
    from shelfwise.engine.engine import Engine

logger = logging.getLogger(__name__)

#: How long a replica waits for a change before it looks again (PostgreSQL wakes it at once).
POLL_SECONDS = 0.2
#: How often the event counts behind "popular" are brought up to date (the events since the last read).
POPULARITY_SECONDS = 30.0
#: Changes older than this are dropped from the feed (a replica down longer rebuilds at start).
RETENTION_SECONDS = 24 * 3600.0


def apply_changes(engine: Engine, limit: int = 1000) -> int:
    """Apply the changes recorded since the engine last looked, except its own; returns how many
    changes were read."""
    changes = engine.store.changes_after(engine.change_id, limit)
    for change in changes:
        if change.origin != engine.store.origin:
            try:
                _apply(engine, change)
            except Exception:  # one bad change must not stop a replica from following the rest
                logger.exception("replica: could not apply change %d (%s)", change.id, change.kind)
        engine.change_id = change.id
    return len(changes)


def _apply(engine: Engine, change: Change) -> None:
    if change.kind == "items":
        records = engine.store.get_items([str(i) for i in change.payload.get("ids", [])])
        if records:
            engine.apply_items(records)
    elif change.kind == "user_deleted":
        engine.event_counts.apply_deletion(change.payload)
        served = engine.served
        served.forget_queries()
        user = served.user_index_by_hash(str(change.payload.get("user_sha256", "")))
        if user is not None:
            with engine.model_files_lock:
                served.forget_index(user, in_folder=engine.forget_in_model_dir)
    elif change.kind == "reload":
        if change.payload.get("version") != engine.model_version:
            engine.reload(change.payload.get("model_dir"), announce=False)
    else:
        logger.warning("replica: change %d has an unknown kind %r; skipped", change.id, change.kind)


def refresh_popularity(engine: Engine) -> None:
    """Bring the event counts up to date from the store (events posted to any replica count)."""
    by_item = engine.event_counts.read(engine.store)  # read outside the write lock
    counts = Popularity.of_counts(by_item, engine.catalog)
    with engine.write_lock:  # items published meanwhile get their (empty) counts
        counts.grow(len(engine.catalog) - len(counts.counts))
        engine.popularity = counts


class ChangeFollower:
    """A thread that keeps one engine up to date with the feed (`apply_changes`), re-reads event
    counts every `POPULARITY_SECONDS` and drops changes older than `RETENTION_SECONDS`."""

    def __init__(self, engine: Engine, *, poll: float = POLL_SECONDS) -> None:
        self.engine = engine
        self.poll = poll
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="shelfwise-changes", daemon=True)

    def start(self) -> ChangeFollower:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        engine = self.engine
        counted = pruned = time.monotonic()
        while not self._stop.is_set():
            try:
                while apply_changes(engine):
                    pass
                now = time.monotonic()
                if now - counted > POPULARITY_SECONDS:
                    refresh_popularity(engine)
                    counted = now
                if now - pruned > 600:
                    engine.store.prune_changes(time.time() - RETENTION_SECONDS)
                    pruned = now
                engine.store.wait_for_change(self.poll)
            except Exception:  # the store is away for a moment: keep following
                logger.exception("replica: following the change feed failed; trying again")
                self._stop.wait(1.0)
