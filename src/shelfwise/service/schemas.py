"""Request and response bodies (pydantic): every field is checked, and a bad one is named."""

from __future__ import annotations

import math
import time
from datetime import datetime, timezone

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shelfwise.data.schema import EVENT_TYPE_ALIASES, EVENT_TYPES
from shelfwise.store import EventRecord, ItemRecord

Id = Field(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f]+$")


def _utc(value: datetime) -> datetime:
    """A time without an offset is UTC (Python would take it as the server's local time)."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def _event_kind(value: str) -> str:
    kind = EVENT_TYPE_ALIASES.get(value.strip().lower())
    if kind is None:
        raise ValueError(f"must be one of {list(EVENT_TYPES)}, not {value!r}")
    return kind


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class EventIn(_Strict):
    """One shopper event. ``timestamp``: ISO 8601 or seconds since the epoch; default: now."""

    user_id: str = Id
    item_id: str = Id
    event_type: str = Field(default="view", description=f"one of {list(EVENT_TYPES)} (or a common alias)")
    timestamp: datetime | float | None = None
    value: float | None = Field(default=None, allow_inf_nan=False)

    @field_validator("event_type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        return _event_kind(value)

    @field_validator("timestamp")
    @classmethod
    def _finite_time(cls, value: datetime | float | None) -> datetime | float | None:
        if isinstance(value, float) and (not math.isfinite(value) or value < 0):
            raise ValueError("must be a time: ISO 8601 or non-negative seconds since the epoch")
        return value

    def record(self) -> EventRecord:
        if self.timestamp is None:
            stamp = time.time()
        elif isinstance(self.timestamp, datetime):
            stamp = _utc(self.timestamp).timestamp()
        else:
            stamp = float(self.timestamp)
        return EventRecord(self.user_id, self.item_id, self.event_type, stamp, self.value)


class EventBatchIn(_Strict):
    events: list[EventIn] = Field(min_length=1)


class SessionEventIn(_Strict):
    item_id: str = Id
    event_type: str = "view"

    @field_validator("event_type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        return _event_kind(value)


class AnonymousIn(_Strict):
    """An anonymous session: the item ids it touched (oldest first), or its events."""

    items: list[str] | None = Field(default=None, max_length=1000)
    events: list[SessionEventIn] | None = Field(default=None, max_length=1000)
    k: int = Field(default=10, ge=1, le=1000)
    category: str | None = Field(default=None, max_length=512)
    in_stock: bool = True
    min_price: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    max_price: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    exclude_purchased: bool = True
    diversity: float = Field(default=0.0, ge=0.0, le=1.0)
    min_categories: int = Field(default=0, ge=0, le=1000)
    outside_share: float = Field(default=0.0, ge=0.0, le=1.0)

    @field_validator("items")
    @classmethod
    def _ids(cls, value: list[str] | None) -> list[str] | None:
        for row, item in enumerate(value or []):
            if not item.strip() or len(item) > 256:
                raise ValueError(f"items[{row}] must be a non-empty id of at most 256 characters")
        return value


class ItemIn(_Strict):
    """A catalog item's fields (PUT replaces the whole item)."""

    title: str = Field(default="", max_length=2000)
    description: str = Field(default="", max_length=20000)
    category: str = Field(default="", max_length=512)
    brand: str = Field(default="", max_length=512)
    price: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    tags: list[str] | str = Field(default_factory=list)
    in_stock: bool = True
    created_at: datetime | float | None = None

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str] | str) -> list[str] | str:
        tags = value if isinstance(value, list) else [value]
        if len(tags) > 100 or any(len(t) > 200 for t in tags):
            raise ValueError("at most 100 tags of at most 200 characters each")
        return value

    def record(self, item_id: str) -> ItemRecord:
        tags = self.tags if isinstance(self.tags, list) else [t for t in self.tags.split(",")]
        created = self.created_at
        if created is None:
            created = time.time()
        elif isinstance(created, datetime):
            created = _utc(created).timestamp()
        return ItemRecord(
            item_id=item_id,
            title=self.title,
            description=self.description,
            category=self.category,
            brand=self.brand,
            price=self.price,
            tags=", ".join(t.strip() for t in tags if t.strip()),
            in_stock=self.in_stock,
            created_at=float(created),
        )


class ItemWithIdIn(ItemIn):
    item_id: str = Id


class ItemBatchIn(_Strict):
    items: list[ItemWithIdIn] = Field(min_length=1)


class ReloadIn(_Strict):
    model_dir: str | None = Field(default=None, description="a model folder; default: the one being served")


class SegmentsIn(_Strict):
    """Recompute segments: `k` of them, or as many as the silhouette chooses (2 to 12) when absent."""

    k: int | None = Field(default=None, ge=1, le=1000)
