"""Ranking: the one top-k rule (best first, ties to the lowest index), NDCG of ranked rows, and the
one bound on how long a list may be (`MAX_K`).

A leaf module (numpy, torch and the error hierarchy only): models, the engine, retrieval and
evaluation all rank with it, so a tie is broken the same way offline and in the service.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from shelfwise.errors import ConfigError

#: The longest list one answer may hold (the service, the engine and the CLI): at 100,000 items one
#: answer stays within about 50 ms on one core with every option on (diversity, cross-category), so
#: no cheap request can stall the server (benchmarks/results/request_cost.md).
MAX_K = 100
#: How deep a model may rank in one call (`Recommender.recommend`): offline evaluation reads deeper
#: lists than any answer holds (NDCG curves, candidate pools of the studies in benchmarks/).
MAX_DEPTH = 10_000


def check_k(k: object, *, limit: int = MAX_K, name: str = "k") -> None:
    """`ConfigError` unless `k` is an integer in [1, `limit`]."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= limit:
        raise ConfigError(f"{name} must be an integer in [1, {limit}]. Got {k!r} instead.")


def topk(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k of each row of a 2-D array, best first; ties go to the lowest index. -inf entries
    become id -1."""
    k = min(k, scores.shape[1])
    if scores.shape[1] > 4 * k:
        # torch.topk finds the k best of each row (multithreaded; 2 to 3 times faster than numpy's
        # partition here) but leaves ties to chance: sorting its picks by index, then stably by score,
        # gives ties among them to the lowest index, and rows where more than k items reach the k-th
        # best score (a tie at the boundary) choose among the tied by the lowest index
        values, picked = torch.topk(torch.from_numpy(np.ascontiguousarray(scores)), k, dim=1)
        boundary = values[:, -1].numpy()
        ids = np.sort(picked.numpy(), axis=1)
        for row in np.flatnonzero((scores >= boundary[:, None]).sum(axis=1) > k):
            pool = np.flatnonzero(scores[row] >= boundary[row])
            ids[row] = pool[np.lexsort((pool, -scores[row, pool]))[:k]]
        order = np.argsort(-np.take_along_axis(scores, ids, axis=1), axis=1, kind="stable")
        ids = np.take_along_axis(ids, order, axis=1)
    else:
        ids = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    top = np.take_along_axis(scores, ids, axis=1)
    ids = np.where(np.isneginf(top), -1, ids)
    return ids, top


def masked_topk(scores: np.ndarray, mask: np.ndarray | None, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The best `k` positions of one row of scores where `mask` is true (all where None) and the
    score is finite, best first, ties to the lowest position. Fewer come back when fewer qualify."""
    allowed = np.isfinite(scores) if mask is None else mask & np.isfinite(scores)
    candidates = np.flatnonzero(allowed)
    if len(candidates) == 0 or k <= 0:
        return np.zeros(0, np.int64), scores[:0]
    values = scores[candidates]
    if len(candidates) > k:
        cut = np.partition(values, len(values) - k)[len(values) - k]
        keep = values >= cut
        candidates, values = candidates[keep], values[keep]
    order = np.lexsort((candidates, -values))[:k]
    return candidates[order].astype(np.int64), values[order]


def ndcg_rows(ids: np.ndarray, targets: Sequence[np.ndarray], depth: int | None = None) -> np.ndarray:
    """NDCG of each row of ranked ids (users × depth; -1 is no item) against its relevant items,
    binary relevance: DCG over the row divided by the ideal DCG of min(depth, |targets|) hits.
    `depth` defaults to the width of `ids`."""
    if len(ids) != len(targets):
        raise ValueError(f"{len(ids)} rows of ids but {len(targets)} target sets")
    ids = np.asarray(ids)
    depth = ids.shape[1] if depth is None else depth
    ids = ids[:, :depth]
    discounts = 1.0 / np.log2(np.arange(2, depth + 2))
    lengths = np.array([len(target) for target in targets], dtype=np.int64)
    # one membership test for all rows: (row, item) pairs as int64 keys; -1 (no item) matches nothing
    stride = np.int64(2**32)
    wanted = np.repeat(np.arange(len(targets), dtype=np.int64), lengths) * stride
    if lengths.sum():
        wanted += np.concatenate([np.asarray(target, dtype=np.int64) for target in targets]) + 1
    found = np.arange(len(ids), dtype=np.int64)[:, None] * stride + ids.astype(np.int64) + 1
    dcg = np.isin(found, wanted) @ discounts[: ids.shape[1]]
    ideal = np.concatenate([[0.0], np.cumsum(discounts)])[np.minimum(lengths, depth)]
    return np.divide(dcg, ideal, out=np.zeros(len(ids)), where=ideal > 0)


def mean_ndcg(ids: np.ndarray, targets: Sequence[np.ndarray]) -> float:
    """Mean NDCG of the rows (0 for no rows)."""
    return float(ndcg_rows(ids, targets).mean()) if len(ids) else 0.0
