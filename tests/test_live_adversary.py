"""A real `shelfwise serve` under an adversary, on SQLite and on PostgreSQL.

- schemathesis (coverage, fuzzing and a bounded stateful phase) against the live OpenAPI document:
  no server error, and every answer, errors included, as the document describes it;
- a race: one client PUTs items and one DELETEs shoppers while others read every read route for
  `RACE_SECONDS`: no 5xx and no connection error.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from live_server import free_port, server_log, start_server

KEY = "adversary-key-0123456789abcdefghijklmnop"
AUTH = {"Authorization": f"Bearer {KEY}"}
RACE_SECONDS = float(os.environ.get("SHELFWISE_RACE_SECONDS", "20"))
#: Cases per operation and phase; the whole run of one store takes about a minute and a half here.
FUZZ_EXAMPLES = int(os.environ.get("SHELFWISE_FUZZ_EXAMPLES", "25"))
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
pytestmark = pytest.mark.slow


@pytest.fixture
def live(store_url, trained_model_dir, tmp_path):
    model_dir = shutil.copytree(trained_model_dir, tmp_path / "model")
    port = free_port()
    server = start_server(model_dir, store_url, port, KEY, SHELFWISE_HOME=str(tmp_path / "home"))
    try:
        yield f"http://127.0.0.1:{port}", model_dir, port
    finally:
        server.terminate()
        server.wait(timeout=30)


def _schemathesis() -> str:
    found = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or shutil.which("schemathesis")
    if found is None:
        pytest.skip("schemathesis is not installed (pip install -e '.[dev]')")
    return found


def test_schemathesis_finds_no_server_error_and_no_schema_violation(live):
    base, model_dir, port = live
    command = [
        _schemathesis(),
        "run",
        f"{base}/openapi.json",
        "--header",
        f"Authorization: Bearer {KEY}",
        "--phases",
        "coverage,fuzzing,stateful",
        "--max-examples",
        str(FUZZ_EXAMPLES),
        "--checks",
        CHECKS,
        "--seed",
        "20261202",
        "--generation-database",
        "none",
        "--request-timeout",
        "30",
        "--no-color",
        "--workers",
        "1",
    ]
    # in the test's folder: schemathesis keeps a cache of what it found in its working directory
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=model_dir.parent)
    report = done.stdout[-6000:] + done.stderr[-2000:]
    assert done.returncode == 0, report
    assert "unhandled error" not in server_log(model_dir, port), server_log(model_dir, port)[-4000:]


def test_writes_racing_reads_give_no_5xx_and_no_connection_error(live, shop_dataset):
    base, model_dir, port = live
    users = [str(u) for u in shop_dataset.user_ids[:120]]
    items = [str(i) for i in shop_dataset.item_ids[:50]]
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    stop = threading.Event()
    lock = threading.Lock()

    def note(response: httpx.Response) -> None:
        with lock:
            statuses[response.status_code] += 1
            if response.status_code >= 500:
                failures.append(f"{response.request.method} {response.request.url}: {response.text[:200]}")

    def loop(work) -> None:
        with httpx.Client(base_url=base, timeout=30) as client:
            step = 0
            while not stop.is_set():
                try:
                    work(client, step)
                except httpx.TransportError as exc:  # a dropped or refused connection
                    with lock:
                        failures.append(f"connection error: {exc!r}")
                step += 1

    def put_items(client: httpx.Client, step: int) -> None:
        batch = [
            {"item_id": f"RACE-{step}-{n}", "title": f"Racing lantern {step} {n}", "category": "Home > Lighting"}
            for n in range(3)
        ]
        note(client.put("/v1/items", json={"items": batch}, headers=AUTH))

    def delete_users(client: httpx.Client, step: int) -> None:
        note(client.delete(f"/v1/users/{users[step % len(users)]}", headers=AUTH))
        time.sleep(0.05)

    def read(client: httpx.Client, step: int) -> None:
        user, item = users[(step * 7) % len(users)], items[step % len(items)]
        for path in (
            f"/v1/users/{user}/recommendations?k=20&diversity=0.3",
            f"/v1/users/{user}/new-arrivals?k=20",
            f"/v1/users/{user}/profile",
            f"/v1/search?q=racing+lantern&user_id={user}",
            f"/v1/items/{item}/similar",
            f"/v1/items/{item}",
            "/v1/users?prefix=u0",
            "/v1/segments",
            "/healthz",
        ):
            note(client.get(path))
        note(client.post("/v1/recommendations", json={"items": [item], "k": 10}))
        note(client.post("/v1/events", json={"user_id": f"racer-{step % 5}", "item_id": item}, headers=AUTH))

    workers = [threading.Thread(target=loop, args=(work,)) for work in (put_items, delete_users, read, read, read)]
    for worker in workers:
        worker.start()
    time.sleep(RACE_SECONDS)
    stop.set()
    for worker in workers:
        worker.join(timeout=60)
    assert not failures, failures[:10]
    assert sum(statuses.values()) > 200 and statuses[200] > 100, statuses
    assert set(statuses) <= {200, 201, 404}, statuses  # 404: a shopper read after the deleter removed them
    assert "unhandled error" not in server_log(model_dir, port), server_log(model_dir, port)[-4000:]
