"""`shelfwise serve` as a real process on loopback: acknowledged events survive `kill -9`."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from shelfwise.store import open_store

KEY = "live-test-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(model_dir, store_url, port) -> subprocess.Popen:
    command = [sys.executable, "-c", "from shelfwise.cli import run; run()", "serve", "--model", str(model_dir)]
    command += ["--store", store_url, "--port", str(port)]
    env = {**os.environ, "SHELFWISE_API_KEY": KEY}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"serve exited with {process.returncode}: {process.stdout.read().decode()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.3)
    process.kill()
    raise AssertionError("serve did not answer /healthz within 120 s")


def test_acknowledged_events_survive_kill_minus_9(trained_model_dir, tmp_path):
    model_dir = shutil.copytree(trained_model_dir, tmp_path / "model")
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    server = _start(model_dir, store_url, port)
    acknowledged = []
    try:
        items = httpx.get(f"{base}/v1/users/u00003/recommendations?k=20").json()["items"]
        for item in items:
            event = {"user_id": "u00003", "item_id": item["item_id"], "event_type": "purchase"}
            response = httpx.post(f"{base}/v1/events", json=event, headers=AUTH)
            assert response.status_code == 201
            acknowledged.append(item["item_id"])
        server.send_signal(signal.SIGKILL)  # right after the last acknowledgement
        server.wait(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
    with open_store(store_url) as store:
        stored = [e.item_id for e in store.user_events("u00003") if e.event_type == "purchase"]
    assert set(acknowledged) <= set(stored)

    server = _start(model_dir, store_url, port)  # a restart serves them, and takes SIGHUP to reload
    try:
        after = [i["item_id"] for i in httpx.get(f"{base}/v1/users/u00003/recommendations?k=20").json()["items"]]
        assert not set(after) & set(acknowledged)  # all bought: excluded
        server.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 60
        while "shelfwise_model_reloads_total 1.0" not in httpx.get(f"{base}/metrics").text:
            assert time.monotonic() < deadline, "SIGHUP did not reload the model"
            time.sleep(0.2)
        assert httpx.get(f"{base}/v1/users/u00003/recommendations").status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=30)
