"""`VectorIndex`: top-K by inner product over item vectors, exact (numpy) or approximate (faiss HNSW),
with a candidate mask applied inside the search.

An HNSW index keeps its graph over the vectors it was built with and searches the rest exactly: the
vectors added since (the tail) and those replaced since (a graph cannot move a node). So an item added
or re-worded while serving costs one row of a small matrix product, not a graph insertion or an exact
search over everything; the graph takes the tail in once it passes `TAIL_LIMIT` rows.

An index can be written to a folder (`save`) and opened from it (`open`) memory-mapped: the vectors
copy-on-write (rows are added into room left in the file), the graph read-only, so several processes
serving one model folder share one copy of both in the page cache.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np

from shelfwise.errors import ConfigError, DataFormatError
from shelfwise.ranking import masked_topk

KINDS = ("exact", "hnsw")
#: Vectors searched exactly beside an HNSW graph before the graph takes them in.
TAIL_LIMIT = 20_000
#: Room for added rows left in a saved index's vector file (a share of its rows, at least 1,024).
HEADROOM = 0.25


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
        self.hnsw_m = hnsw_m
        self.ef_search = ef_search
        self._buffer = np.zeros((1024, self.dim), dtype=np.float32)
        self._n = 0
        self._lock = threading.Lock()
        # (faiss graph over rows [0, n), n, graph rows replaced since: searched exactly), replaced
        # whole so a search reads one consistent triple; a graph is never changed once published
        self._graph: tuple[Any, int, np.ndarray] = (None, 0, np.zeros(0, dtype=np.int64))
        self._graph_file: Path | None = None  # set when the graph is memory-mapped (read-only)
        #: Goes up whenever a stored vector is replaced (adds leave earlier rows as they were).
        self.revision = 0

    def __len__(self) -> int:
        return self._n

    @property
    def vectors(self) -> np.ndarray:
        """The stored (normalised) vectors, row = id; a view, valid until the next `add`."""
        return self._buffer[: self._n]

    @property
    def graph_size(self) -> int:
        """How many rows the HNSW graph holds (0 for an exact index)."""
        return self._graph[1]

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
            graph_n = self._graph[1]
            if self.kind == "hnsw" and end - graph_n > (TAIL_LIMIT if graph_n else 0):
                self._grow_graph()
        return np.arange(start, end)

    def _grow_graph(self) -> None:
        """Take the tail into the graph (a memory-mapped graph is read into memory first: faiss cannot
        grow a mapped one). Callers hold the lock."""
        import faiss

        graph, graph_n, stale = self._graph
        if graph is None:
            graph = faiss.IndexHNSWFlat(self.dim, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            graph.hnsw.efConstruction = 80
        elif self._graph_file is not None:
            graph = faiss.read_index(str(self._graph_file))
            self._graph_file = None
        else:  # searches in flight keep the graph they started with
            graph = faiss.clone_index(graph)
        graph.add(self._buffer[graph_n : self._n])
        self._graph = (graph, self._n, stale)

    def update(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Replace the vectors of existing ids (rows in the graph are then searched exactly beside it,
        until `rebuild`)."""
        vectors = self._prepare(vectors)
        ids = np.atleast_1d(np.asarray(ids, dtype=np.int64))
        if len(ids) and (ids.min() < 0 or ids.max() >= self._n):
            raise ConfigError(f"Vector ids must be in [0, {self._n - 1}].")
        with self._lock:
            self._buffer[ids] = vectors
            graph, graph_n, stale = self._graph
            in_graph = ids[ids < graph_n]
            if len(in_graph):
                self._graph = (graph, graph_n, np.union1d(stale, in_graph))
            self.revision += 1

    def rebuild(self) -> None:
        """Rebuild the HNSW graph from the current vectors (after many `update`s)."""
        if self.kind != "hnsw":
            return
        with self._lock:
            self._graph = (None, 0, np.zeros(0, dtype=np.int64))
            self._graph_file = None
            self._grow_graph()

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
        elif mask is not None:
            mask = mask[:n]
        allowed = n if mask is None else int(np.count_nonzero(mask))  # a fifth of sum()'s cost
        k = min(k, allowed)
        if k == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        query = self._prepare(query)
        graph, graph_n, stale = self._graph
        if graph is None or graph_n == 0:
            ids, scores = masked_topk(vectors @ query[0], mask, k)
            return ids, scores.astype(np.float32)
        graph_mask = np.ones(graph_n, dtype=bool) if mask is None else mask[:graph_n].copy()
        graph_mask[stale] = False
        ids, scores = self._search_graph(graph, query, k, graph_mask)
        rest = np.concatenate([stale, np.arange(graph_n, n)]) if len(stale) else np.arange(graph_n, n)
        if mask is not None and len(rest):
            rest = rest[mask[rest]]
        if len(rest):
            ids = np.concatenate([ids, rest])
            scores = np.concatenate([scores, (vectors[rest] @ query[0]).astype(np.float32)])
            order = np.lexsort((ids, -scores))[:k]
            ids, scores = ids[order], scores[order]
        return ids, scores

    def _search_graph(self, graph, query: np.ndarray, k: int, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import faiss

        k = min(k, int(np.count_nonzero(mask)))
        if k == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        # SWIG-generated: faiss's type information does not list it
        params = faiss.SearchParametersHNSW(efSearch=max(self.ef_search, k))  # type: ignore[attr-defined]
        bitmap = np.packbits(mask, bitorder="little")  # a boolean mask packs as is
        params.sel = faiss.IDSelectorBitmap(len(mask), faiss.swig_ptr(bitmap))
        distances, ids = graph.search(query, k, params=params)
        keep = ids[0] >= 0
        return ids[0][keep].astype(np.int64), distances[0][keep].astype(np.float32)

    # ------------------------------------------------------------------------------- files
    def save(self, folder: str | Path, name: str, **extra: object) -> None:
        """Write the index as ``name.npy`` (the vectors, with room for more), ``name.faiss`` (the
        graph, for HNSW; built here over every row) and ``name.json`` into `folder`."""
        import faiss

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        n = self._n
        if self.kind == "hnsw" and (self._graph[1] != n or len(self._graph[2])):
            self.rebuild()
        capacity = n + max(1024, int(n * HEADROOM))
        rows = np.lib.format.open_memmap(
            folder / f"{name}.npy", mode="w+", dtype=np.float32, shape=(capacity, self.dim)
        )
        rows[:n] = self._buffer[:n]
        rows.flush()
        del rows
        if self.kind == "hnsw":
            faiss.write_index(self._graph[0], str(folder / f"{name}.faiss"))
        meta = {"rows": n, "dim": self.dim, "kind": self.kind, "normalize": self.normalize, "hnsw_m": self.hnsw_m}
        meta.update(extra)
        (folder / f"{name}.json").write_text(json.dumps(meta))

    @classmethod
    def open(cls, folder: str | Path, name: str, *, ef_search: int = 128) -> VectorIndex:
        """An index written by `save`, memory-mapped (`DataFormatError` when its files do not agree)."""
        import faiss

        folder = Path(folder)
        try:
            meta = json.loads((folder / f"{name}.json").read_text())
            mapped = np.load(folder / f"{name}.npy", mmap_mode="c")
        except (OSError, ValueError) as exc:
            raise DataFormatError(f"{folder}/{name}: not a readable vector index ({exc}).") from None
        index = cls(
            meta["dim"], kind=meta["kind"], normalize=meta["normalize"], hnsw_m=meta["hnsw_m"], ef_search=ef_search
        )
        if mapped.ndim != 2 or mapped.shape[1] != index.dim or mapped.shape[0] < meta["rows"]:
            raise DataFormatError(f"{folder}/{name}.npy holds {mapped.shape}, not {meta['rows']} rows of {index.dim}.")
        index._buffer = np.asarray(mapped)  # still the mapping (copy-on-write), as a plain array
        index._n = int(meta["rows"])
        if index.kind == "hnsw":
            graph_file = folder / f"{name}.faiss"
            graph = faiss.read_index(str(graph_file), faiss.IO_FLAG_MMAP_IFC)
            if graph.ntotal != index._n:
                raise DataFormatError(f"{graph_file} holds {graph.ntotal} vectors, not {index._n}.")
            index._graph = (graph, index._n, np.zeros(0, dtype=np.int64))
            index._graph_file = graph_file
        return index
