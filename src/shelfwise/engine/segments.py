"""Shopper segments: spherical k-means over shoppers' taste vectors, the number of segments chosen by
the silhouette (cosine) on a sample or given, each segment named by its nearest catalog words and its
top categories."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import scipy.sparse as sp

from shelfwise.data.schema import DEFAULT_EVENT_WEIGHTS
from shelfwise.engine.answers import segment_view
from shelfwise.engine.understanding import TASTE_DECAY, nearest_terms
from shelfwise.errors import ConfigError, UnknownIdError
from shelfwise.store import EventRecord, Store

#: Segment counts the silhouette chooses among when none is given.
K_RANGE = range(2, 13)
#: Shoppers the silhouette is measured on (k-means itself runs on all of them).
SILHOUETTE_SAMPLE = 3_000


@dataclass
class Segment:
    segment_id: int
    name: str
    size: int
    keywords: list[dict] = field(default_factory=list)
    categories: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Segmentation:
    segments: list[Segment]
    assignments: dict[str, int]
    criterion: dict
    created_at: float = field(default_factory=time.time)

    def rows(self) -> list[dict]:
        """The segments as the store saves them."""
        return [
            {
                "segment_id": segment.segment_id,
                "name": segment.name,
                "size": segment.size,
                "summary": {"keywords": segment.keywords, "categories": segment.categories, **self.criterion},
                "created_at": self.created_at,
            }
            for segment in self.segments
        ]


@dataclass
class _Events:
    """Shoppers' known events as parallel arrays (row = the shopper's place in `users`)."""

    users: list[str]
    row: np.ndarray
    position: np.ndarray
    weight: np.ndarray
    timestamp: np.ndarray


def _collect(events: Iterable[list[EventRecord]], index_of: dict[str, int]) -> _Events:
    """One pass over batches of events in any order, keeping four numbers per event (not the
    records), so millions of events fit. Shoppers with no known item are left out; the others are
    in id order."""
    codes: dict[str, int] = {}
    parts = []
    for batch in events:
        count = len(batch)
        user = np.fromiter((codes.setdefault(e.user_id, len(codes)) for e in batch), np.int64, count)
        position = np.fromiter((index_of.get(e.item_id, -1) for e in batch), np.int64, count)
        weight = np.fromiter((DEFAULT_EVENT_WEIGHTS.get(e.event_type, 1.0) for e in batch), np.float64, count)
        stamp = np.fromiter((e.timestamp for e in batch), np.float64, count)
        known = position >= 0
        parts.append((user[known], position[known], weight[known], stamp[known]))
    user, position, weight, stamp = (
        np.concatenate([p[i] for p in parts]) if parts else np.zeros(0, dtype) for i, dtype in enumerate(_DTYPES)
    )
    names = np.array(list(codes), dtype=object)
    present = np.unique(user)
    order = present[np.argsort(names[present], kind="stable")]
    row_of = np.full(len(codes), -1, dtype=np.int64)
    row_of[order] = np.arange(len(order))
    return _Events([str(u) for u in names[order]], row_of[user], position, weight, stamp)


_DTYPES = (np.int64, np.int64, np.float64, np.float64)
#: Shoppers whose taste vectors are summed at a time.
_TASTE_CHUNK = 20_000


def _taste(collected: _Events, vectors: np.ndarray, max_events: int) -> np.ndarray:
    """Unit taste vectors (as `understanding.taste_vector`) over each shopper's latest `max_events`."""
    rows, positions = collected.row, collected.position
    order = np.lexsort((collected.weight, positions, collected.timestamp, rows))
    rows, positions, weights = rows[order], positions[order], collected.weight[order]
    counts = np.bincount(rows, minlength=len(collected.users))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    from_end = counts[rows] - 1 - (np.arange(len(rows)) - starts[rows])
    keep = from_end < max_events
    coefficients = weights[keep] * TASTE_DECAY ** from_end[keep]
    mixing = sp.csr_matrix((coefficients, (rows[keep], positions[keep])), shape=(len(counts), len(vectors)))
    out = np.zeros((len(counts), vectors.shape[1]), dtype=np.float32)
    for start in range(0, len(counts), _TASTE_CHUNK):  # float64 sums over only the items each chunk uses
        chunk = mixing[start : start + _TASTE_CHUNK]
        used = np.unique(chunk.indices)
        matrix = np.asarray(chunk[:, used] @ vectors[used].astype(np.float64))
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        out[start : start + _TASTE_CHUNK] = matrix / np.where(norms > 0, norms, 1.0)
    return out


def taste_matrix(
    events: Iterable[list[EventRecord]], index_of: dict[str, int], vectors: np.ndarray, *, max_events: int = 200
) -> tuple[list[str], np.ndarray]:
    """Every shopper's taste vector (as `understanding.taste_vector`, over their latest `max_events`
    known events) from batches of events in any order. Shoppers with no known item are left out."""
    collected = _collect(events, index_of)
    return collected.users, _taste(collected, vectors, max_events)


def spherical_kmeans(
    matrix: np.ndarray, k: int, *, seed: int = 42, iterations: int = 50
) -> tuple[np.ndarray, np.ndarray]:
    """Labels and unit centroids: k-means on the unit sphere (cosine), k-means++ start."""
    rng = np.random.default_rng(seed)
    n = len(matrix)
    centroids = [matrix[rng.integers(n)]]
    closest = 1.0 - matrix @ centroids[0]
    for _ in range(1, k):
        weights = np.clip(closest, 0, None) ** 2
        pick = rng.choice(n, p=weights / weights.sum()) if weights.sum() > 0 else rng.integers(n)
        centroids.append(matrix[pick])
        closest = np.minimum(closest, 1.0 - matrix @ matrix[pick])
    centers = np.array(centroids, dtype=np.float64)
    labels = np.full(n, -1)
    for _ in range(iterations):
        new_labels = np.argmax(matrix @ centers.T, axis=1)
        if np.array_equal(new_labels, labels):
            break
        labels = new_labels
        for cluster in range(k):
            members = matrix[labels == cluster]
            if len(members) == 0:  # an empty cluster takes the point farthest from its centre
                far = np.argmin(np.max(matrix @ centers.T, axis=1))
                centers[cluster] = matrix[far]
                continue
            total = members.sum(axis=0)
            centers[cluster] = total / max(np.linalg.norm(total), 1e-12)
    return labels, centers


def silhouette(matrix: np.ndarray, labels: np.ndarray) -> float:
    """Mean silhouette with cosine distance (−1..1; higher: tighter, better separated segments)."""
    distance = 1.0 - np.clip(matrix @ matrix.T, -1.0, 1.0)
    clusters = np.unique(labels)
    if len(clusters) < 2:
        return -1.0
    mean_to = np.stack([distance[:, labels == c].mean(axis=1) for c in clusters], axis=1)
    counts = np.array([(labels == c).sum() for c in clusters])
    own = np.searchsorted(clusters, labels)
    rows = np.arange(len(labels))
    # a point's own cluster mean excludes the point itself (distance 0)
    a = mean_to[rows, own] * counts[own] / np.maximum(counts[own] - 1, 1)
    others = mean_to.copy()
    others[rows, own] = np.inf
    b = others.min(axis=1)
    score = np.where(counts[own] > 1, (b - a) / np.maximum(np.maximum(a, b), 1e-12), 0.0)
    return float(score.mean())


def choose_k(matrix: np.ndarray, *, seed: int = 42, k_range: Sequence[int] = K_RANGE) -> tuple[int, dict[int, float]]:
    """The k of `k_range` with the best silhouette on a sample of at most `SILHOUETTE_SAMPLE` shoppers."""
    rng = np.random.default_rng(seed)
    sample = matrix if len(matrix) <= SILHOUETTE_SAMPLE else matrix[rng.choice(len(matrix), SILHOUETTE_SAMPLE, False)]
    scores = {}
    for k in k_range:
        if k >= len(sample):
            break
        labels, _ = spherical_kmeans(sample, k, seed=seed)
        scores[k] = round(silhouette(sample, labels), 4)
    if not scores:
        raise ConfigError(f"segments need at least 3 shoppers with known items; there are {len(matrix)}.")
    return max(scores, key=lambda k: (scores[k], -k)), scores


def segment_shoppers(
    events: Iterable[list[EventRecord]],
    *,
    index_of: dict[str, int],
    vectors: np.ndarray,
    categories: Sequence[str],
    terms: Sequence[str],
    term_vectors: np.ndarray,
    k: int | None = None,
    seed: int = 42,
) -> Segmentation:
    """Cluster the shoppers of `events` (an iterable of batches, read once) into segments."""
    collected = _collect(events, index_of)
    users, matrix = collected.users, _taste(collected, vectors, 200)
    if len(users) == 0:
        raise ConfigError("segments: no shopper has events on catalog items yet, so there is nothing to segment.")
    if k is None:
        k, scores = choose_k(matrix, seed=seed)
        tried = [{"k": size, "silhouette": score} for size, score in scores.items()]
        criterion = {"method": "silhouette (cosine)", "chosen_k": k, "scores": tried}
    else:
        if not 1 <= k <= max(len(users), 1):
            raise ConfigError(f"segments: k must be in [1, {len(users)}] (the shoppers). Got {k} instead.")
        criterion = {"method": "given", "chosen_k": k}
    labels, centers = spherical_kmeans(matrix, k, seed=seed)
    assignments = dict(zip(users, labels.tolist(), strict=True))
    # category shares per segment: every known event of its shoppers, weighted by event type
    names, codes = np.unique(np.asarray(categories, dtype=object).astype(str), return_inverse=True)
    event_codes = codes[collected.position]
    named = names[event_codes] != ""
    cells = labels[collected.row[named]] * len(names) + event_codes[named]
    shares = np.bincount(cells, weights=collected.weight[named], minlength=k * len(names)).reshape(k, len(names))
    segments = []
    for cluster in range(k):
        total = shares[cluster].sum() or 1.0
        top = sorted(
            ((names[c], shares[cluster, c]) for c in np.flatnonzero(shares[cluster])), key=lambda kv: (-kv[1], kv[0])
        )[:3]
        cats = [{"name": str(name), "share": round(float(value) / total, 4)} for name, value in top]
        words = nearest_terms(centers[cluster], terms, term_vectors, allowed=None, count=5)
        leaf = str(top[0][0]).split(">")[-1].strip() if top else "mixed"
        name = " · ".join([*(w["term"] for w in words[:2]), leaf])
        segments.append(Segment(cluster, name, int((labels == cluster).sum()), words, cats))
    return Segmentation(segments, assignments, criterion)


def segment_page(store: Store, segment_id: int, *, limit: int = 100, offset: int = 0) -> dict:
    """One saved segment as the API shows it, with a page of its shoppers' ids."""
    for row in store.list_segments():
        if row["segment_id"] == segment_id:
            members = store.segment_members(segment_id, limit=limit, offset=offset)
            return {**segment_view(row), "users": members, "limit": limit, "offset": offset}
    raise UnknownIdError(f"Unknown segment {segment_id!r}.")
