"""What the engine answers with: a recommended item with its reason, and a segment as the API shows it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from shelfwise.retrieval import Reason
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
