"""`shelfwise serve` as a real process on loopback, for the tests that need one."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(model_dir: Path, store_url: str, port: int, key: str, *options: str, **env: str) -> subprocess.Popen:
    """`shelfwise serve` on `port` (more command-line `options` where given), once its /healthz
    answers 200 (output to a log beside the model)."""
    command = [sys.executable, "-c", "from shelfwise.cli import run; run()", "serve", "--model", str(model_dir)]
    command += ["--store", store_url, "--port", str(port), *options]
    log = open(Path(model_dir).parent / f"serve-{port}.log", "ab")  # noqa: SIM115 - the process writes it
    process = subprocess.Popen(
        command, env={**os.environ, "SHELFWISE_API_KEY": key, **env}, stdout=log, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.close()
            output = (Path(model_dir).parent / f"serve-{port}.log").read_text(errors="replace")
            raise AssertionError(f"serve exited with {process.returncode}: {output[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.3)
    process.kill()
    raise AssertionError("serve did not answer /healthz within 120 s")


def server_log(model_dir: Path, port: int) -> str:
    return (Path(model_dir).parent / f"serve-{port}.log").read_text(errors="replace")
