"""`shelfwise serve` as a real process on loopback: acknowledged events survive `kill -9`, a retried
event is stored once across a crash, a weak production key stops the start before anything loads."""

import os
import shutil
import signal
import subprocess
import sys
import time

import httpx
import pytest

from live_server import free_port, start_server
from shelfwise.store import open_store

KEY = "live-test-key-0123456789abcdefghijklmnop"
AUTH = {"Authorization": f"Bearer {KEY}"}
pytestmark = pytest.mark.slow


def test_acknowledged_events_survive_kill_minus_9(trained_model_dir, tmp_path, store_url):
    model_dir = shutil.copytree(trained_model_dir, tmp_path / "model")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server(model_dir, store_url, port, KEY)
    acknowledged = []
    try:
        items = httpx.get(f"{base}/v1/users/u00003/recommendations?k=20").json()["items"]
        for item in items:
            event = {"user_id": "u00003", "item_id": item["item_id"], "event_type": "purchase"}
            response = httpx.post(f"{base}/v1/events", json=event, headers=AUTH)
            assert response.status_code == 201
            acknowledged.append(item["item_id"])
        # the last one again, as a client whose answer was lost in the crash would retry it
        retried = {"user_id": "crash-retry", "item_id": items[0]["item_id"], "event_type": "cart", "event_id": "r-1"}
        assert httpx.post(f"{base}/v1/events", json=retried, headers=AUTH).json()["recorded"] == 1
        server.send_signal(signal.SIGKILL)  # right after the last acknowledgement
        server.wait(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
    with open_store(store_url) as store:
        stored = [e.item_id for e in store.user_events("u00003") if e.event_type == "purchase"]
    assert set(acknowledged) <= set(stored)

    server = start_server(model_dir, store_url, port, KEY)  # a restart serves them, and takes SIGHUP to reload
    try:
        after = [i["item_id"] for i in httpx.get(f"{base}/v1/users/u00003/recommendations?k=20").json()["items"]]
        assert not set(after) & set(acknowledged)  # all bought: excluded
        again = httpx.post(f"{base}/v1/events", json=retried, headers=AUTH)
        assert again.status_code == 201 and again.json() == {"recorded": 0, "duplicates": 1}
        with open_store(store_url) as store:
            assert len(store.user_events("crash-retry")) == 1
        server.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 60
        while "shelfwise_model_reloads_total 1.0" not in httpx.get(f"{base}/metrics").text:
            assert time.monotonic() < deadline, "SIGHUP did not reload the model"
            time.sleep(0.2)
        assert httpx.get(f"{base}/v1/users/u00003/recommendations").status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.parametrize("key", ["", "changeme", "a" * 40, "short-but-varied-key-123"])
def test_production_refuses_a_weak_key_before_loading_anything(tmp_path, key):
    store = tmp_path / "store.db"
    command = [sys.executable, "-c", "from shelfwise.cli import run; run()", "serve", "--model", str(tmp_path / "none")]
    env = {**os.environ, "SHELFWISE_ENVIRONMENT": "production", "SHELFWISE_API_KEY": key}
    done = subprocess.run([*command, "--store", f"sqlite:///{store}"], env=env, capture_output=True, timeout=120)
    output = (done.stdout + done.stderr).decode()
    assert done.returncode != 0 and "SHELFWISE_API_KEY" in output, output
    assert "config.json" not in output and not store.exists()  # nothing loaded, no store made
