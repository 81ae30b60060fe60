"""Ranking metrics with binary relevance, exactly as ../shared/PROTOCOLS.md defines them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from shelfwise.ranking import ndcg_rows


def hits_matrix(ranked: np.ndarray, relevant: Sequence[np.ndarray]) -> np.ndarray:
    """Boolean (users × K): whether the item at each position is relevant. Padding ids (-1) never are."""
    ranked = np.asarray(ranked)
    hits = np.zeros(ranked.shape, dtype=bool)
    for row, (items, targets) in enumerate(zip(ranked, relevant, strict=True)):
        if len(targets):
            hits[row] = np.isin(items, targets) & (items >= 0)
    return hits


def ndcg_at_k(ranked: np.ndarray, relevant: Sequence[np.ndarray], k: int) -> np.ndarray:
    """Per-user NDCG@k: DCG over the top-k list divided by the ideal DCG for min(k, |R|) hits."""
    return ndcg_rows(np.asarray(ranked), relevant, depth=k)


def recall_at_k(ranked: np.ndarray, relevant: Sequence[np.ndarray], k: int) -> np.ndarray:
    """Per-user Recall@k = |L ∩ R| / |R| (0 for an empty R)."""
    ranked = np.asarray(ranked)[:, :k]
    hits = hits_matrix(ranked, relevant).sum(axis=1)
    sizes = np.array([len(r) for r in relevant], dtype=float)
    return np.where(sizes > 0, hits / np.where(sizes > 0, sizes, 1.0), 0.0)


def pooled_recall_at_k(ranked: np.ndarray, relevant: Sequence[np.ndarray], k: int) -> float:
    """Hits over all users divided by the number of relevant items over all users (NaN if none)."""
    ranked = np.asarray(ranked)[:, :k]
    total = sum(len(r) for r in relevant)
    if total == 0:
        return float("nan")
    return float(hits_matrix(ranked, relevant).sum() / total)
