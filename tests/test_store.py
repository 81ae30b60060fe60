"""One contract both store backends pass (PostgreSQL skips where it is not reachable)."""

import threading
import time

import pytest

from shelfwise.errors import ConfigError, WriterBusy
from shelfwise.store import SCHEMA_VERSION, EventRecord, ItemRecord, open_store
from shelfwise.store.connect import BUSY_MS


@pytest.fixture
def store(store_url):
    with open_store(store_url) as opened:
        yield opened


def test_new_store_is_migrated_once(store_url):
    with open_store(store_url) as first:
        assert first.schema_version() == SCHEMA_VERSION
        assert first.migrate() == []  # nothing left to apply
    with open_store(store_url) as again:
        assert again.schema_version() == SCHEMA_VERSION


def test_events_come_back_oldest_first_and_limit_keeps_the_latest(store):
    store.add_events(
        [
            EventRecord("u1", "b", "view", 20.0),
            EventRecord("u1", "a", "purchase", 10.0, 2.5),
            EventRecord("u2", "a", "view", 5.0),
            EventRecord("u1", "c", "cart", 30.0),
        ]
    )
    assert [e.item_id for e in store.user_events("u1")] == ["a", "b", "c"]
    assert store.user_events("u1")[0].value == 2.5
    assert [e.item_id for e in store.user_events("u1", limit=2)] == ["b", "c"]
    assert store.user_events("nobody") == []
    assert store.has_user("u2") and not store.has_user("nobody")
    assert store.user_count() == 2 and store.event_count() == 4
    assert store.item_event_counts() == {"a": 2, "b": 1, "c": 1}
    batches = list(store.iter_events(batch_size=3))
    assert [len(b) for b in batches] == [3, 1]


def test_user_summaries_and_the_list_of_shoppers(store):
    store.add_events([EventRecord("u1", "a", "view", 20.0), EventRecord("u1", "b", "view", 10.0)])
    store.add_events([EventRecord("u1", "c", "view", 5.0), EventRecord("u10", "a", "view", 50.0)])
    store.add_events([EventRecord("x_%", "a", "view", 1.0), EventRecord("x_y", "a", "view", 2.0)])
    summary = store.user_summary("u1")
    assert (summary.first_seen, summary.last_seen, summary.events) == (5.0, 20.0, 3)
    assert store.user_summary("nobody") is None
    assert [u.user_id for u in store.list_users("u")] == ["u10", "u1"]  # most recent first
    assert [u.user_id for u in store.list_users(limit=2)] == ["u10", "u1"]
    assert [u.user_id for u in store.list_users("x_%")] == ["x_%"]  # LIKE wildcards are plain characters
    assert store.list_users("nobody") == []


def test_segments_are_replaced_whole_and_forgotten_with_the_shopper(store):
    store.add_events([EventRecord("u1", "a", "view", 1.0), EventRecord("u2", "b", "view", 2.0)])
    first = [{"segment_id": 0, "name": "tea", "size": 2, "summary": {"keywords": ["tea"]}, "created_at": 5.0}]
    store.replace_segments(first, {"u1": 0, "u2": 0})
    assert store.list_segments() == first
    assert store.segment_members(0) == ["u1", "u2"] and store.segment_members(0, limit=1, offset=1) == ["u2"]
    second = [
        {"segment_id": 0, "name": "mugs", "size": 1, "summary": {}, "created_at": 6.0},
        {"segment_id": 1, "name": "boots", "size": 1, "summary": {}, "created_at": 6.0},
    ]
    store.replace_segments(second, {"u1": 1, "u2": 0})
    assert [s["name"] for s in store.list_segments()] == ["mugs", "boots"]
    assert store.user_segment("u1") == 1 and store.user_segment("nobody") is None
    report = store.delete_user("u1")
    assert report.extra == {"segment": 1} and store.user_segment("u1") is None
    assert store.segment_members(1) == []


def test_items_upsert_reports_created_and_updated(store):
    assert store.upsert_items([ItemRecord("x", title="X", price=3.5), ItemRecord("y")]) == (2, 0)
    assert store.upsert_items([ItemRecord("x", title="X2", in_stock=False), ItemRecord("z")]) == (1, 1)
    item = store.get_item("x")
    assert item.title == "X2" and item.in_stock is False and item.price is None
    assert store.get_item("missing") is None
    assert [i.item_id for i in store.all_items()] == ["x", "y", "z"]
    assert store.item_count() == 3


def test_delete_user_removes_every_event_and_the_profile(store):
    store.add_events([EventRecord("u1", "a", "view", 1.0), EventRecord("u1", "b", "view", 2.0)])
    store.add_events([EventRecord("u2", "a", "view", 1.0)])
    report = store.delete_user("u1")
    assert (report.events, report.profile, report.found) == (2, 1, True)
    assert store.user_events("u1") == [] and not store.has_user("u1")
    assert store.event_count() == 1
    assert not store.delete_user("u1").found


def test_concurrent_writers_lose_nothing(store):
    def write(user: str) -> None:
        for step in range(25):
            store.add_events([EventRecord(user, "a", "view", float(step))])

    threads = [threading.Thread(target=write, args=(f"u{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.event_count() == 100
    assert all(len(store.user_events(f"u{n}")) == 25 for n in range(4))


def test_a_write_asked_not_to_wait_stores_nothing_while_another_writer_holds_the_lock(store):
    event = EventRecord("u1", "a", "view", 1.0, event_id="e1")
    with store.lock, pytest.raises(WriterBusy):
        store.add_new_events([event], wait=False)
    assert store.event_count() == 0
    assert store.add_new_events([event], wait=False) == [event]
    assert store.add_new_events([event], wait=False) == []  # stored once, by its id
    assert store.lock.acquire(blocking=False)  # released after each write, stored or not
    store.lock.release()


def test_a_write_asked_not_to_wait_gives_up_soon_on_another_processs_lock(store_url):
    """Two stores over one database stand for two processes: while one holds a write transaction
    (SQLite's write lock; on PostgreSQL the shopper's row), the other's brief write gives up within
    a moment, stores nothing, and waits as usual again afterwards."""
    with open_store(store_url) as first, open_store(store_url) as second:
        with first.db.begin() as conn:
            first.add_events_in(conn, [EventRecord("u1", "a", "view", 1.0)])
            started = time.monotonic()
            with pytest.raises(WriterBusy):
                second.add_new_events([EventRecord("u1", "b", "view", 2.0)], wait=False)
            assert time.monotonic() - started < 5
        assert [e.item_id for e in second.user_events("u1")] == ["a"]
        assert [e.item_id for e in second.add_new_events([EventRecord("u1", "b", "view", 2.0)], wait=False)] == ["b"]
        if second.backend == "sqlite":
            with second.db.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == BUSY_MS


def test_a_history_read_survives_the_server_dropping_its_connections(store_url):
    """PostgreSQL's history reads keep connections without a ping on checkout: where the server
    dropped them (a restart, a terminated backend), the next read still answers."""
    if not store_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only: SQLite has no server to drop a connection")
    import psycopg

    with open_store(store_url) as store:
        store.add_events([EventRecord("u1", "a", "view", 1.0), EventRecord("u1", "b", "view", 2.0)])
        assert [e.item_id for e in store.user_events("u1")] == ["a", "b"]
        with psycopg.connect(store_url.split("?")[0], autocommit=True) as admin:
            killed = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
                (f"shelfwise-reads-{store.origin}",),
            ).fetchall()
        assert killed  # the read's connection was there, and is gone
        assert [e.item_id for e in store.user_events("u1", limit=1)] == ["b"]
        assert [e.item_id for e in store.user_events("u1")] == ["a", "b"]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://x@localhost/db", "only sqlite:/// and postgresql://"),
        ("sqlite://", "needs a file path"),
        ("not a url", "not a database URL"),
    ],
)
def test_bad_store_urls_are_explained(url, message):
    with pytest.raises(ConfigError, match=message):
        open_store(url)


_LOADER = """
import sys, time
import shelfwise.store.bulk as bulk
from shelfwise.store import EventRecord, open_store

bulk.CHUNK = 500
store = open_store(sys.argv[1])
events = (EventRecord(f"u{i % 97}", f"i{i % 31}", "view", float(i)) for i in range(int(sys.argv[2])))

def progress(done):
    print(done, flush=True)
    time.sleep(0.05)

store.bulk_load_events("job", events, total=int(sys.argv[2]), progress=progress)
print("finished", flush=True)
"""


def test_a_bulk_load_killed_midway_goes_on_where_it_stopped(store_url):
    import os
    import signal
    import subprocess
    import sys

    import sqlalchemy as sa

    total = 20_000
    child = subprocess.Popen([sys.executable, "-c", _LOADER, store_url, str(total)], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    for line in child.stdout:
        if int(line) >= 3_000:
            os.kill(child.pid, signal.SIGKILL)  # in the middle, with no chance to clean up
            break
    child.wait()
    store = open_store(store_url)
    try:
        committed = store.event_count()
        assert 3_000 <= committed < total and committed % 500 == 0  # whole chunks only
        indexes = {i["name"] for i in sa.inspect(store.db).get_indexes("events")}
        assert "ix_events_item" not in indexes  # still loading: no secondary indexes yet

        def events():
            return (EventRecord(f"u{i % 97}", f"i{i % 31}", "view", float(i)) for i in range(total))

        # the killed loader owned the job a moment ago: take it over as stale rather than wait
        import shelfwise.store.bulk as bulk

        bulk.STALE_SECONDS, stale = 0.0, bulk.STALE_SECONDS
        try:
            assert store.bulk_load_events("job", events(), total=total) == total - committed
        finally:
            bulk.STALE_SECONDS = stale
        assert store.event_count() == total
        assert [e.timestamp for e in store.user_events("u5")][:3] == [5.0, 102.0, 199.0]  # none twice, in order
        indexes = {i["name"] for i in sa.inspect(store.db).get_indexes("events")}
        assert {"ix_events_item", "ix_events_user_time"} <= indexes
        assert store.bulk_load_events("job", events(), total=total) == 0  # finished: not again
        assert store.bulk_load_events("another job", events(), total=total) == 0  # a store with a history
    finally:
        store.close()
