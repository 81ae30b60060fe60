"""`VectorIndex`: top-K by inner product over item vectors, exact (numpy) or approximate (faiss HNSW),
with a candidate mask applied inside the search."""

from __future__ import annotations

import threading

import numpy as np

from shelfwise.errors import ConfigError
from shelfwise.ranking import masked_topk

KINDS = ("exact", "hnsw")


class VectorIndex:
    """Inner-product search over a growing set of vectors.

    Args:
        dim: vector size.
        kind: ``exact`` (a matrix product; right for up to a few hundred thousand items) or ``hnsw``
            (faiss ``IndexHNSWFlat``; approximate, sub-linear).
        normalize: L2-normalise vectors and queries, so scores are cosines.
        hnsw_m, ef_search: HNSW graph degree and search breadth (recall against speed).
    """

    def __init__(
        self, dim: int, *, kind: str = "exact", normalize: bool = True, hnsw_m: int = 32, ef_search: int = 128
    ) -> None:
        if kind not in KINDS:
            raise ConfigError(f"Vector index kind must be one of {KINDS}. Got {kind!r} instead.")
        self.dim = int(dim)
        self.kind = kind
        self.normalize = normalize
        self.ef_search = ef_search
        self._buffer = np.zeros((1024, self.dim), dtype=np.float32)
        self._n = 0
        self._lock = threading.Lock()
        self._faiss = None
        self._faiss_stale = False
        if kind == "hnsw":
            import faiss

            self._faiss = faiss.IndexHNSWFlat(self.dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
            self._faiss.hnsw.efConstruction = 80

    def __len__(self) -> int:
        return self._n

    @property
    def vectors(self) -> np.ndarray:
        """The stored (normalised) vectors, row = id; a view, valid until the next `add`."""
        return self._buffer[: self._n]

    def _prepare(self, vectors: np.ndarray) -> np.ndarray:
        vectors = np.ascontiguousarray(np.atleast_2d(vectors), dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ConfigError(f"Vectors must have {self.dim} dimensions, not {vectors.shape[-1]}.")
        if not np.isfinite(vectors).all():
            raise ConfigError("Vectors must be finite (no NaN or infinity).")
        if self.normalize:
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors = vectors / np.where(norms == 0, 1.0, norms)
        return vectors

    def add(self, vectors: np.ndarray) -> np.ndarray:
        """Append vectors; returns their ids (consecutive). Amortised O(1) per vector: the buffer
        doubles when full, and searches already running keep the buffer they started with."""
        vectors = self._prepare(vectors)
        with self._lock:
            start = self._n
            end = start + len(vectors)
            if end > len(self._buffer):
                grown = np.zeros((max(end, 2 * len(self._buffer)), self.dim), dtype=np.float32)
                grown[:start] = self._buffer[:start]
                self._buffer = grown
            self._buffer[start:end] = vectors
            self._n = end
            if self._faiss is not None and not self._faiss_stale:
                self._faiss.add(vectors)
        return np.arange(start, end)

    def update(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Replace the vectors of existing ids. An HNSW graph cannot move a node, so exact search
        serves until `rebuild` is called."""
        vectors = self._prepare(vectors)
        ids = np.atleast_1d(np.asarray(ids, dtype=np.int64))
        if len(ids) and (ids.min() < 0 or ids.max() >= self._n):
            raise ConfigError(f"Vector ids must be in [0, {self._n - 1}].")
        with self._lock:
            self._buffer[ids] = vectors
            if self._faiss is not None:
                self._faiss_stale = True

    def rebuild(self) -> None:
        """Rebuild the ANN graph from the current vectors (after `update`)."""
        if self._faiss is None:
            return
        with self._lock:
            self._faiss.reset()
            self._faiss.add(self._buffer[: self._n])
            self._faiss_stale = False

    def scores(self, query: np.ndarray) -> np.ndarray:
        """Exact scores of one query against every vector."""
        return self._buffer[: self._n] @ self._prepare(query)[0]

    def search(self, query: np.ndarray, k: int, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The `k` best ids (and scores) for one query among ids where `mask` is true; best first,
        ties to the lowest id (exact). Fewer than `k` come back when fewer are allowed."""
        n = self._n
        vectors = self._buffer[:n]
        if n == 0 or k <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        if mask is not None and len(mask) < n:  # vectors added after the caller's catalog snapshot
            mask = np.concatenate([mask, np.zeros(n - len(mask), dtype=bool)])
        allowed = n if mask is None else int(mask[:n].sum())
        k = min(k, allowed)
        if k == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        query = self._prepare(query)
        if self._faiss is not None and not self._faiss_stale and self._faiss.ntotal == n:
            return self._search_faiss(query, k, None if mask is None else mask[:n])
        ids, scores = masked_topk(vectors @ query[0], None if mask is None else mask[:n], k)
        return ids, scores.astype(np.float32)

    def _search_faiss(self, query: np.ndarray, k: int, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        import faiss

        index = self._faiss
        if index is None:
            raise RuntimeError("no HNSW graph: this index is exact")
        # SWIG-generated: faiss's type information does not list it
        params = faiss.SearchParametersHNSW(efSearch=max(self.ef_search, k))  # type: ignore[attr-defined]
        if mask is not None:
            bitmap = np.packbits(mask.astype(np.uint8), bitorder="little")
            params.sel = faiss.IDSelectorBitmap(len(mask), faiss.swig_ptr(bitmap))
        distances, ids = index.search(query, k, params=params)
        keep = ids[0] >= 0
        return ids[0][keep].astype(np.int64), distances[0][keep].astype(np.float32)
