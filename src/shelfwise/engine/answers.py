"""What the engine answers with: a recommended item with its reason, and a segment as the API shows it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from shelfwise.engine.catalog import CatalogSnapshot
from shelfwise.retrieval import Reason, explain
from shelfwise.store import ItemRecord


@dataclass(frozen=True)
class Recommendation:
    """One item in an answer, with its external id, score and reason."""

    item_id: str
    score: float
    reason: Reason
    item: ItemRecord

    def as_dict(self) -> dict:
        record = self.item
        return {
            "item_id": self.item_id,
            "score": round(float(self.score), 6) if math.isfinite(self.score) else None,
            "title": record.title,
            "category": record.category,
            "brand": record.brand,
            "price": record.price,
            "in_stock": record.in_stock,
            "reason": {
                "kind": self.reason.kind,
                "text": self.reason.text,
                "item_id": None if self.reason.item is None else self._anchor,
            },
        }

    _anchor: str | None = field(default=None, repr=False)


def build_answer(
    catalog: CatalogSnapshot,
    ids: np.ndarray,
    scores: np.ndarray,
    history: list[tuple[int, str]],
    *,
    vectors: np.ndarray,
    new: np.ndarray,
    popular: np.ndarray,
) -> list[Recommendation]:
    """The answer for ranked catalog positions: each item with its record and the reason it is
    there (`retrieval.explain`: like an item of the shopper's `history` of (position, event type),
    new, popular), in the order given."""
    reasons = explain(ids, history=history, vectors=vectors, records=catalog.records, new=new, popular=popular)
    out = []
    for item, score, reason in zip(ids, scores, reasons, strict=True):
        anchor = None if reason.item is None else catalog.ids[reason.item]
        out.append(Recommendation(catalog.ids[item], float(score), reason, catalog.records[item], anchor))
    return out


def segment_view(row: dict) -> dict:
    summary = row["summary"]
    return {
        "segment_id": row["segment_id"],
        "name": row["name"],
        "size": row["size"],
        "keywords": summary.get("keywords", []),
        "categories": summary.get("categories", []),
        "criterion": {k: v for k, v in summary.items() if k not in ("keywords", "categories")},
        "created_at": row["created_at"],
    }
