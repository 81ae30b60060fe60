"""Replicas and workers over one store, as real `shelfwise serve` processes: what one is told, the
others answer within a second (catalog writes, deletions, reloads through the store's change feed;
events because every answer reads the store)."""

import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from live_server import free_port, start_server
from shelfwise.data.dataset import Dataset

KEY = "replica-test-key-0123456789abcdefghijk"
AUTH = {"Authorization": f"Bearer {KEY}"}
pytestmark = pytest.mark.slow


def _until(check, seconds: float) -> float:
    """Seconds until `check()` is true; fails after `seconds`."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < seconds, f"not within {seconds} s"
        time.sleep(0.02)
    return time.monotonic() - started


def _anonymous_shared_mb(pid: int) -> float:
    """MB of memory not backed by a file that process `pid` shares with others (from /proc/PID/smaps)."""
    shared_kb, anonymous = 0, False
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        fields = line.split()
        if "-" in fields[0] and not fields[0].endswith(":"):  # a mapping's header: range perms offset dev inode [path]
            anonymous = len(fields) < 6 or fields[5].startswith("[")
        elif anonymous and fields[0] in ("Shared_Clean:", "Shared_Dirty:"):
            shared_kb += int(fields[1])
    return shared_kb / 1024


def _ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["item_id"] for item in response.json()["items"]]


def test_two_replicas_answer_alike(trained_model_dir, tmp_path, store_url):
    model_dir = shutil.copytree(trained_model_dir, tmp_path / "model")  # one folder, as on a shared volume
    ports = free_port(), free_port()
    a, b = (f"http://127.0.0.1:{port}" for port in ports)
    servers = [start_server(model_dir, store_url, ports[0], KEY)]
    try:
        servers.append(start_server(model_dir, store_url, ports[1], KEY))
        # a new item put on A is found by search on B within a second
        body = {"title": "Quokka lantern of Zanzibar", "description": "a brass lantern shaped like a quokka"}
        assert httpx.put(f"{a}/v1/items/QUOKKA", json=body, headers=AUTH).status_code == 200
        seconds = _until(lambda: "QUOKKA" in _ids(httpx.get(f"{b}/v1/search", params={"q": "quokka lantern"})), 1.0)
        print(f"item put on A found by search on B after {seconds:.3f} s")
        assert httpx.get(f"{b}/v1/items/QUOKKA").json()["title"] == body["title"]
        # a price change too
        assert httpx.put(f"{a}/v1/items/QUOKKA", json={**body, "price": 12.5}, headers=AUTH).status_code == 200
        _until(lambda: httpx.get(f"{b}/v1/items/QUOKKA").json()["price"] == 12.5, 1.0)
        # an event posted to A changes B's next answer for that shopper
        before = _ids(httpx.get(f"{b}/v1/users/u00003/recommendations?k=10"))
        event = {"user_id": "u00003", "item_id": before[0], "event_type": "purchase"}
        assert httpx.post(f"{a}/v1/events", json=event, headers=AUTH).status_code == 201
        after = _ids(httpx.get(f"{b}/v1/users/u00003/recommendations?k=10"))
        assert before[0] not in after and after != before
        # a shopper deleted on A is gone on B
        assert httpx.delete(f"{a}/v1/users/u00003", headers=AUTH).status_code == 200
        assert httpx.get(f"{b}/v1/users/u00003/recommendations").json()["user_known"] is False
        # two deletions at once, one on each replica, over the one model folder: both erased there
        with ThreadPoolExecutor(2) as pool:
            answers = list(
                pool.map(
                    lambda pair: httpx.delete(f"{pair[0]}/v1/users/{pair[1]}", headers=AUTH),
                    [(a, "u00005"), (b, "u00007")],
                )
            )
        assert [r.status_code for r in answers] == [200, 200], [r.text for r in answers]
        kept = {str(u) for u in Dataset.load(model_dir / "dataset").user_ids}
        assert not {"u00003", "u00005", "u00007"} & kept
        for base in (a, b):
            for user in ("u00005", "u00007"):
                assert httpx.get(f"{base}/v1/users/{user}/recommendations").json()["user_known"] is False
        # a reload on A reaches B: both serve the same model version
        version = httpx.post(f"{a}/v1/admin/reload", headers=AUTH).json()["model_version"]
        _until(lambda: httpx.get(f"{b}/v1/model").json()["model_version"] == version, 2.0)
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=30)


def test_workers_on_one_port_answer_alike(trained_model_dir, tmp_path, store_url):
    model_dir = shutil.copytree(trained_model_dir, tmp_path / "model")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server(model_dir, store_url, port, KEY, "--workers", "2")
    try:
        with httpx.Client() as client:
            # each request may reach either worker; a write through one is soon seen by both
            body = {"title": "Wombat kettle", "description": "an enamel kettle with a wombat lid"}
            assert client.put(f"{base}/v1/items/WOMBAT", json=body, headers=AUTH).status_code == 200
            time.sleep(1.0)
            for _ in range(20):
                fresh = httpx.get(f"{base}/v1/search", params={"q": "wombat kettle"})  # a new connection each
                assert "WOMBAT" in _ids(fresh)
            pids = {httpx.get(f"{base}/v1/admin/status", headers=AUTH).json().get("pid") for _ in range(30)}
            assert len(pids) == 2, pids
        # the workers were forked from a parent that loaded the encoder: they share its weights' pages
        # (spawned workers share no anonymous memory at all)
        for pid in pids:
            assert _anonymous_shared_mb(pid) > 50, pid
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_event_counts_are_read_whole_once_then_by_the_new_events_less_what_a_deletion_removed(store_url, monkeypatch):
    import shelfwise.engine.popularity as popularity
    from shelfwise.engine.popularity import EventCounts
    from shelfwise.store import EventRecord, open_store

    store = open_store(store_url)
    try:
        store.add_events([EventRecord("u1", "a", "view", 1.0), EventRecord("u2", "a", "view", 2.0)])
        counts = EventCounts()
        assert counts.read(store) == {"a": 2}
        store.add_events([EventRecord("u1", "b", "view", 3.0), EventRecord("u3", "a", "purchase", 4.0)])
        assert counts.read(store) == {"a": 3, "b": 1}  # only the events since: no scan of every event
        report = store.delete_user("u1")  # as another replica would; its change lists the events
        assert sorted(item for _, item in report.removed) == ["a", "b"]
        store.add_events([EventRecord("u4", "c", "view", 5.0)])
        counts.apply_deletion(EventCounts.deletion_payload(report.removed))
        assert counts.read(store) == {"a": 2, "c": 1}
        # events deleted before a read counted them are not taken off twice
        store.add_events([EventRecord("u5", "a", "view", 6.0)])
        report = store.delete_user("u5")
        counts.apply_deletion(EventCounts.deletion_payload(report.removed))
        assert counts.read(store) == {"a": 2, "c": 1}
        # a deletion too large to list: the next read counts every event again
        monkeypatch.setattr(popularity, "LISTED_EVENTS", 0)
        store.add_events([EventRecord("u6", "c", "view", 7.0)])
        counts.read(store)
        report = store.delete_user("u6")
        assert EventCounts.deletion_payload(report.removed) == {"recount": True}
        counts.apply_deletion({"recount": True})
        assert counts.read(store) == {"a": 2, "c": 1}
    finally:
        store.close()


def test_a_deletion_on_one_replica_stops_its_events_counting_on_the_other(trained_model_dir, tmp_path):
    import numpy as np

    from shelfwise.engine import Engine
    from shelfwise.engine.popularity import Popularity
    from shelfwise.engine.replication import apply_changes, refresh_popularity

    url = f"sqlite:///{tmp_path / 'store.db'}"
    a = Engine(trained_model_dir, url, index="exact", forget_in_model_dir=False)
    b = Engine(trained_model_dir, url, index="exact", forget_in_model_dir=False)
    try:
        shopper = a.store.list_users("", 1)[0].user_id
        taken = np.zeros(len(b.catalog), dtype=np.float64)
        for event in a.shopper_events(shopper):
            taken[b.catalog.index[event.item_id]] += 1
        refresh_popularity(b)
        before = b.popularity.counts.copy()
        a.delete_user(shopper)
        apply_changes(b)
        refresh_popularity(b)
        assert taken.sum() > 0
        np.testing.assert_array_equal(b.popularity.counts, before - taken)
        whole = Popularity.of_counts(b.store.item_event_counts(), b.catalog)  # a scan of every event
        np.testing.assert_array_equal(b.popularity.counts, whole.counts)
        refresh_popularity(a)
        np.testing.assert_array_equal(a.popularity.counts, whole.counts)
    finally:
        a.close()
        b.close()
