import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pandas as pd
import pytest

from shelfwise.cli import main
from shelfwise.errors import ConfigError
from shelfwise.text import (
    EmbeddingCache,
    EncoderError,
    ItemTextTemplate,
    OpenAIEmbeddingEncoder,
    create_encoder,
    encode_items,
    encode_texts,
)


@pytest.fixture(scope="module")
def encoder():
    return create_encoder()


class CountingEncoder:
    """A deterministic stand-in that counts what reaches it (for cache bookkeeping tests)."""

    name = "counting:1"
    dim = 8

    def __init__(self, delay: float = 0.0):
        self.seen: list[str] = []
        self.delay = delay

    def encode(self, texts, *, progress=False):
        self.seen += list(texts)
        time.sleep(self.delay)
        vectors = np.array([[hash((t, i)) % 97 + 1 for i in range(self.dim)] for t in texts], np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_default_encoder_loads_offline_and_understands_text(encoder, monkeypatch):
    real_connect = socket.socket.connect

    def loopback_only(self, address):
        if isinstance(address, tuple) and address[0] not in ("127.0.0.1", "::1", "localhost"):
            raise OSError(f"network access attempted: {address}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", loopback_only)
    vectors = encoder.encode(["a sofa for the living room", "comfortable couch", "stainless steel chef knife"])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2
    assert encoder.name.startswith("all-MiniLM-L6-v2:")


def test_item_text_template():
    template = ItemTextTemplate(max_description_chars=20)
    item = {
        "title": "Mug",
        "brand": None,
        "category": "Home > Kitchen",
        "description": "A " + "very " * 20,
        "tags": ["blue", "gift"],
    }
    assert template.compose(item) == "Mug. Home > Kitchen. A very very very. blue, gift"
    assert ItemTextTemplate("{brand} {title}").compose({"title": "Mug"}) == "Mug"
    assert ItemTextTemplate(max_chars=10).compose({"title": "A long product title here"}) == "A long"
    with pytest.raises(ConfigError, match=r"unknown field\(s\) \['colour'\]"):
        ItemTextTemplate("{title} {colour}")


def test_cache_encodes_only_new_or_changed_items(tmp_path):
    items = pd.DataFrame({"item_id": [str(i) for i in range(200)], "title": [f"product {i}" for i in range(200)]})
    first = CountingEncoder()
    result = encode_items(items, first, cache_dir=tmp_path)
    assert (result.encoded, result.from_cache) == (200, 0)
    again = CountingEncoder()
    second = encode_items(items, again, cache_dir=tmp_path)
    assert (second.encoded, second.from_cache, again.seen) == (0, 200, [])
    np.testing.assert_array_equal(second.vectors, result.vectors)
    changed = items.copy()
    changed.loc[:9, "title"] = [f"renamed {i}" for i in range(10)]
    third = CountingEncoder()
    result = encode_items(changed, third, cache_dir=tmp_path)
    assert (result.encoded, len(third.seen)) == (10, 10)


def test_repeated_texts_and_a_partial_cache_keep_each_row_in_place(tmp_path):
    encode_texts(["b", "d"], CountingEncoder(), cache_dir=tmp_path)  # half of them cached
    texts = ["a", "b", "a", "c", "d", "b"]
    counting = CountingEncoder()
    result = encode_texts(texts, counting, cache_dir=tmp_path)
    assert sorted(counting.seen) == ["a", "c"]  # each new text once; cached ones not at all
    assert (result.encoded, result.from_cache) == (3, 3)  # rows: a, a, c new; b, d, b cached
    expected = CountingEncoder().encode(texts)
    np.testing.assert_allclose(result.vectors, expected, rtol=1e-6)
    assert result.vectors.dtype == np.float32 and result.vectors.shape == (6, 8)
    empty = encode_texts([], CountingEncoder(), cache_dir=tmp_path)
    assert empty.vectors.shape[0] == 0 and empty.encoded == 0


def test_a_new_cache_keeps_each_vector_in_its_page(tmp_path):
    import sqlite3

    with EmbeddingCache(tmp_path) as cache:
        cache.put("m", [b"k" * 32], np.ones((1, 384), np.float32))
    connection = sqlite3.connect(tmp_path / "embeddings.sqlite")
    assert connection.execute("PRAGMA page_size").fetchone()[0] == 16384
    connection.close()


WORKER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    sys.path.insert(0, sys.argv[3])
    from test_text import CountingEncoder
    from shelfwise.text import encode_texts
    texts = [f"{sys.argv[2]} text {i}" for i in range(int(sys.argv[4]))]
    encode_texts(texts, CountingEncoder(delay=float(sys.argv[5])), cache_dir=sys.argv[1], write_batch=50)
    print("done")
    """
)


def _worker(cache, prefix, count, delay):
    tests_dir = os.path.dirname(__file__)
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, str(cache), prefix, tests_dir, str(count), str(delay)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_processes_share_the_cache(tmp_path):
    workers = [_worker(tmp_path, prefix, 400, 0.01) for prefix in ("a", "b")]
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
        assert "done" in out
    with EmbeddingCache(tmp_path) as cache:
        assert cache.count("counting:1") == 800


def test_a_killed_run_leaves_only_whole_entries(tmp_path):
    worker = _worker(tmp_path, "k", 5000, 0.2)
    deadline = time.time() + 60
    while time.time() < deadline:
        time.sleep(0.2)
        if (tmp_path / "embeddings.sqlite").exists():
            with EmbeddingCache(tmp_path) as cache:
                if cache.count() >= 100:
                    break
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=30)
    with EmbeddingCache(tmp_path) as cache:
        stored = cache.count("counting:1")
    assert 100 <= stored < 5000 and stored % 50 == 0  # whole batches only
    rerun = CountingEncoder()
    result = encode_texts([f"k text {i}" for i in range(5000)], rerun, cache_dir=tmp_path)
    assert result.from_cache == stored and result.encoded == 5000 - stored


def test_encode_command_reports_cache_use(tmp_path, shop, capsys):
    catalog = tmp_path / "items.parquet"
    shop.items.head(120).to_parquet(catalog)
    args = ["encode", "--data", str(catalog), "--cache-dir", str(tmp_path / "cache"), "--json"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert set(first) == {"items", "encoded", "from_cache", "encode_seconds"}
    assert (first["items"], first["encoded"], first["from_cache"]) == (120, 120, 0)
    assert main(args) == 0
    second = json.loads(capsys.readouterr().out)
    assert (second["encoded"], second["from_cache"]) == (0, 120)
    assert second["encode_seconds"] < 0.05 * first["encode_seconds"]
    changed = shop.items.head(120).copy()
    changed.loc[changed.index[:10], "title"] = [f"Refreshed product line {i}" for i in range(10)]
    changed.to_parquet(catalog)
    assert main(args) == 0
    third = json.loads(capsys.readouterr().out)
    assert (third["encoded"], third["from_cache"]) == (10, 110)


class _EmbeddingHandler(BaseHTTPRequestHandler):
    encoder = None
    calls = 0

    def do_POST(self):
        length = int(self.headers["Content-Length"])
        request = json.loads(self.rfile.read(length))
        if self.path != "/v1/embeddings" or request.get("model") != "mini":
            self.send_response(404)
            self.end_headers()
            self.wfile.write(b'{"error": "unknown model"}')
            return
        type(self).calls += 1
        vectors = type(self).encoder.encode(request["input"])
        body = {
            "object": "list",
            "model": "mini",
            "data": [
                {"object": "embedding", "index": i, "embedding": v.tolist()}
                for i, v in reversed(list(enumerate(vectors)))
            ],
        }
        payload = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def embedding_server(encoder):
    _EmbeddingHandler.encoder = encoder
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EmbeddingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_remote_encoder_against_a_loopback_server(embedding_server, encoder):
    remote = create_encoder(f"openai:{embedding_server}/v1#mini")
    texts = [f"item number {i}" for i in range(70)]
    before = _EmbeddingHandler.calls
    vectors = remote.encode(texts)
    assert _EmbeddingHandler.calls - before == 2  # batches of 64
    np.testing.assert_allclose(vectors, encoder.encode(texts), atol=1e-5)
    assert remote.dim == 384 and remote.name == f"openai:{embedding_server}:mini"


def test_remote_encoder_errors_are_clear(embedding_server):
    with pytest.raises(EncoderError, match="answered 404"):
        OpenAIEmbeddingEncoder(embedding_server, "other").encode(["x"])
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(EncoderError, match="Cannot reach the embedding server"):
        OpenAIEmbeddingEncoder(f"http://127.0.0.1:{port}", "mini", timeout=2).encode(["x"])
    with pytest.raises(ConfigError, match="openai:URL#MODEL"):
        create_encoder("openai:http://x")
