"""Diversity re-ranking: maximal marginal relevance (Carbonell & Goldstein 1998)."""

from __future__ import annotations

import numpy as np


def mmr(
    ids: np.ndarray, scores: np.ndarray, vectors: np.ndarray, k: int, diversity: float
) -> tuple[np.ndarray, np.ndarray]:
    """Choose `k` of the candidates `ids` (best first, with `scores`) greedily by
    ``(1 - diversity) · relevance - diversity · max cosine to the items already chosen``.

    Relevance is the candidates' scores scaled to [0, 1]; `vectors` are the item vectors (rows by
    item id). ``diversity = 0`` keeps the order as is. Returns the chosen ids and their original scores.
    """
    ids = np.asarray(ids, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    if diversity <= 0 or len(ids) <= 1:
        return ids[:k], scores[:k]
    finite = np.isfinite(scores)
    low, high = (scores[finite].min(), scores[finite].max()) if finite.any() else (0.0, 1.0)
    relevance = np.where(finite, (scores - low) / (high - low or 1.0), 0.0)
    unit = vectors[ids].astype(np.float64)
    norms = np.linalg.norm(unit, axis=1, keepdims=True)
    unit = unit / np.where(norms == 0, 1.0, norms)
    similarity = unit @ unit.T
    chosen: list[int] = []
    closest = np.full(len(ids), -np.inf)
    available = np.ones(len(ids), dtype=bool)
    for _ in range(min(k, len(ids))):
        penalty = np.where(np.isfinite(closest), closest, 0.0)
        value = (1 - diversity) * relevance - diversity * penalty
        value[~available] = -np.inf
        best = int(np.argmax(value))
        chosen.append(best)
        available[best] = False
        closest = np.maximum(closest, similarity[best])
    picked = np.array(chosen, dtype=np.int64)
    return ids[picked], scores[picked]
