"""A short reason for each recommended item: why this shopper sees it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: How each event type reads in a reason ("because you bought X").
VERBS = {
    "purchase": "bought",
    "cart": "added to your cart",
    "favorite": "saved",
    "rating": "rated",
    "view": "viewed",
    "click": "viewed",
}
#: Below this cosine a history item is not a convincing "because".
MIN_SIMILARITY = 0.35


@dataclass(frozen=True)
class Reason:
    """``kind`` is one of ``because``, ``new``, ``popular``, ``similar_shoppers``; ``item`` is the
    history item a ``because`` refers to (an index)."""

    kind: str
    text: str
    item: int | None = None


def explain(
    recommended: np.ndarray,
    *,
    history: list[tuple[int, str]],
    vectors: np.ndarray,
    records: Sequence,
    new: np.ndarray,
    popular: np.ndarray,
) -> list[Reason]:
    """Reasons for `recommended` item indices.

    Args:
        history: the shopper's recent (item index, event type), oldest first.
        vectors: item vectors (text), row = item index; the closest history item is the "because".
        records: item records by index (with ``title`` and ``category``).
        new: boolean mask of new arrivals; popular: boolean mask of each category's best sellers.
    """
    recent = history[-50:]
    anchors = np.array([item for item, _ in recent], dtype=np.int64)
    kinds = [kind for _, kind in recent]
    similarity = None
    if len(anchors) and len(recommended):
        unit = vectors[np.concatenate([np.asarray(recommended, dtype=np.int64), anchors])].astype(np.float64)
        norms = np.linalg.norm(unit, axis=1, keepdims=True)
        unit = unit / np.where(norms == 0, 1.0, norms)
        similarity = unit[: len(recommended)] @ unit[len(recommended) :].T
    reasons = []
    for row, item in enumerate(np.asarray(recommended, dtype=np.int64)):
        category = str(records[item].category or "").split(" > ")[-1] or "the shop"
        if new[item]:
            reasons.append(Reason("new", f"new in {category}"))
            continue
        if similarity is not None:
            # the most similar history item; among near-ties, the most recent one
            scores = similarity[row] + 1e-6 * np.arange(len(anchors))
            best = int(np.argmax(scores))
            if similarity[row, best] >= MIN_SIMILARITY and anchors[best] != item:
                verb = VERBS.get(kinds[best], "viewed")
                title = str(records[anchors[best]].title or "an item")
                reasons.append(Reason("because", f"because you {verb} {title}", int(anchors[best])))
                continue
        if popular[item] or similarity is None:
            reasons.append(Reason("popular", f"popular in {category}"))
        else:
            reasons.append(Reason("similar_shoppers", "shoppers with similar tastes chose this"))
    return reasons
