"""An on-disk embedding cache keyed by (encoder identity, hash of the text).

It is one SQLite database in WAL mode: each write is a transaction, so two processes can share it and
a run killed half-way leaves only whole entries behind.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from shelfwise.errors import ShelfwiseError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS embeddings (
    model TEXT NOT NULL,
    key BLOB NOT NULL,
    dim INTEGER NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (model, key)
) WITHOUT ROWID
"""
_CHUNK = 500
#: How long opening the cache keeps trying while another process holds the lock it needs.
_OPEN_SECONDS = 60.0


def text_key(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


class EmbeddingCache:
    """Vectors by (model, text). `read_into` reads what is there; `put` stores new vectors atomically."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / "embeddings.sqlite"
        deadline = time.monotonic() + _OPEN_SECONDS
        while True:
            try:
                self._connection = self._open()
                break
            except sqlite3.OperationalError as exc:
                # Two processes opening a new cache at once: switching it to WAL takes a lock that
                # SQLite refuses at once ("database is locked") rather than waiting for; try again.
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise ShelfwiseError(f"Embedding cache {self.path} cannot be opened: {exc}") from None
                time.sleep(0.05)
            except sqlite3.DatabaseError as exc:
                raise ShelfwiseError(f"Embedding cache {self.path} cannot be opened: {exc}") from None

    def _open(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
        try:
            # 16 KiB pages (for a new file; set before WAL): a 384-float vector fits in its page. On the
            # default 4 KiB pages every entry spilled into an overflow page: 2.5x the disk and reads.
            connection.execute("PRAGMA page_size=16384")
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute(_SCHEMA)
        except sqlite3.DatabaseError:
            connection.close()
            raise
        return connection

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> EmbeddingCache:
        return self

    def __exit__(self, *args: object) -> None:
        self.close()

    def read_into(self, model: str, keys: Sequence[bytes], out: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Cached vectors of distinct `keys` written into row i of a (len(keys), dim) float32 matrix
        (`out`, or one made when the first vector shows the dimension); returns the matrix and which
        rows were found. No per-vector arrays: a million cached vectors cost the matrix alone."""
        found = np.zeros(len(keys), dtype=bool)
        row_of = {key: row for row, key in enumerate(keys)}
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self._connection.execute(
                f"SELECT key, dim, vector FROM embeddings WHERE model = ? AND key IN ({marks})", [model, *chunk]
            )
            for key, dim, blob in rows:
                if len(blob) != 4 * dim:  # a torn entry cannot happen in a transaction; this guards corruption
                    continue
                if out is None:
                    out = np.zeros((len(keys), dim), dtype=np.float32)
                if dim == out.shape[1]:
                    row = row_of[bytes(key)]
                    out[row] = np.frombuffer(blob, dtype=np.float32)
                    found[row] = True
        return (np.zeros((len(keys), 0), np.float32) if out is None else out), found

    def put(self, model: str, keys: Sequence[bytes], vectors: np.ndarray) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        rows = [(model, key, vectors.shape[1], vectors[i].tobytes()) for i, key in enumerate(keys)]
        connection = self._connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.executemany("INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?, ?)", rows)
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise

    def count(self, model: str | None = None) -> int:
        if model is None:
            return int(self._connection.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0])
        query = "SELECT COUNT(*) FROM embeddings WHERE model = ?"
        return int(self._connection.execute(query, [model]).fetchone()[0])
