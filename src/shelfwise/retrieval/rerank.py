"""Re-ranking: diversity by maximal marginal relevance (Carbonell & Goldstein 1998), and lists that
reach beyond a shopper's dominant categories."""

from __future__ import annotations

import math
from collections.abc import Sequence

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


def dominant_categories(categories: Sequence[str], weights: Sequence[float], *, coverage: float = 0.8) -> set[str]:
    """The fewest categories that together hold `coverage` of a shopper's weighted events (at least
    their first); empty categories do not count."""
    totals: dict[str, float] = {}
    for category, weight in zip(categories, weights, strict=True):
        if category:
            totals[category] = totals.get(category, 0.0) + float(weight)
    ranked = sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))
    grand = sum(totals.values())
    out: set[str] = set()
    held = 0.0
    for category, weight in ranked:
        if out and held >= coverage * grand:
            break
        out.add(category)
        held += weight
    return out


def cross_category(
    ids: np.ndarray,
    scores: np.ndarray,
    categories: np.ndarray,
    k: int,
    *,
    dominant: set[str],
    min_categories: int = 0,
    outside_share: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Choose `k` of the candidates `ids` (best first) so the list spans at least `min_categories`
    categories and holds at least ``ceil(outside_share · k)`` items outside the shopper's `dominant`
    categories, giving up as little score as the greedy pass can: candidates are taken in score order
    unless the slots left are needed for a constraint the candidate does not help. Where the
    candidates cannot meet a constraint, the best of the passed-over ones fill the list."""
    ids = np.asarray(ids, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    need_outside = math.ceil(outside_share * k - 1e-9)
    if (min_categories <= 1 and need_outside <= 0) or len(ids) == 0:
        return ids[:k], scores[:k]
    chosen: list[int] = []
    seen: set[str] = set()
    outside = 0
    for row, item in enumerate(ids):
        if len(chosen) == k:
            break
        category = categories[item]
        is_outside = category not in dominant
        is_new = category not in seen
        left = k - len(chosen) - 1
        missing = max(0, need_outside - outside - is_outside) + max(0, min_categories - len(seen) - is_new)
        if missing > left:
            continue
        chosen.append(row)
        seen.add(category)
        outside += is_outside
    if len(chosen) < k:  # the constraints could not be met: fill with the best passed-over items
        taken = set(chosen)
        chosen += [row for row in range(len(ids)) if row not in taken][: k - len(chosen)]
        chosen.sort()
    rows = np.array(chosen, dtype=np.int64)
    return ids[rows], scores[rows]
