"""Request and response bodies (pydantic): every field is checked at the edge, and a bad one is named.

Texts and ids refuse control characters (and lone UTF-16 surrogates, which no store can keep);
free text keeps tabs and line breaks. Times go through `epoch_seconds`: ISO 8601, or seconds (or
milliseconds) since the epoch, between 1995-01-01 and one day after the server's clock.
"""

from __future__ import annotations

import re
import time
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainValidator, WithJsonSchema, field_validator

from shelfwise.data.schema import EVENT_TYPE_ALIASES, EVENT_TYPES, epoch_seconds
from shelfwise.ranking import MAX_K
from shelfwise.store import EventRecord, ItemRecord

_ID_CONTROLS = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")
_TEXT_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
#: What the OpenAPI document says of ids and of one-line and free texts (the validators below decide).
ID_PATTERN = r"^[^\x00-\x1f\x7f]+$"
LINE_PATTERN = r"^[^\x00-\x1f\x7f]*$"
TEXT_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
#: Largest page of a segment's shoppers and deepest offset into it.
MAX_PAGE = 10_000
MAX_OFFSET = 10_000_000
#: Largest price, event value and catalog id a request may carry.
MAX_PRICE = 1e9
MAX_VALUE = 1e6
MAX_SEGMENT_ID = 2**31 - 1


def _refuse(pattern: re.Pattern[str], what: str):
    def check(value: str | None) -> str | None:
        if value is None:
            return None
        bad = pattern.search(value)
        if bad is not None:
            raise ValueError(
                f"{what} must not contain control characters; found U+{ord(bad.group()):04X} at position {bad.start()}"
            )
        return value

    return check


no_id_controls = _refuse(_ID_CONTROLS, "an id")
no_line_controls = _refuse(_ID_CONTROLS, "this text")
no_text_controls = _refuse(_TEXT_CONTROLS, "this text (tabs and line breaks aside)")


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


IdStr = Annotated[
    str,
    Field(min_length=1, max_length=256, json_schema_extra={"pattern": ID_PATTERN}),
    AfterValidator(no_id_controls),
    AfterValidator(_not_blank),
]
LineStr = Annotated[
    str, Field(max_length=512, json_schema_extra={"pattern": LINE_PATTERN}), AfterValidator(no_line_controls)
]


def _free_text(max_length: int):
    return Annotated[
        str,
        Field(max_length=max_length, json_schema_extra={"pattern": TEXT_PATTERN}),
        AfterValidator(no_text_controls),
    ]


def _time(value: Any) -> float | None:
    """A time in seconds since the epoch, from ISO 8601 text or a number (see `epoch_seconds`)."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        try:
            value = float(text)
        except ValueError:
            try:
                value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
            except ValueError:
                raise ValueError(f"{text[:40]!r} is not ISO 8601 nor a number of seconds since the epoch") from None
    return epoch_seconds(value)


#: A time as a client sends it; validated into seconds since the epoch.
TimeIn = Annotated[
    float | None,
    PlainValidator(_time),
    WithJsonSchema(
        {
            "anyOf": [{"type": "string", "format": "date-time"}, {"type": "number"}, {"type": "null"}],
            "description": "ISO 8601 (UTC where no offset is given), or seconds since the epoch; numbers from 1e11 "
            "on are taken as milliseconds (JavaScript's Date.now()). Accepted: 1995-01-01 to one day after the "
            "server's clock.",
        }
    ),
]


#: An event type: the OpenAPI document's enum lists the canonical ones (a generated client's enum
#: then has one member each); the common aliases are accepted too, in any case, and listed in words.
EventTypeIn = Annotated[
    str,
    Field(
        max_length=64,
        description="one of "
        + ", ".join(EVENT_TYPES)
        + "; also accepted, in any case: "
        + ", ".join(f"{alias} ({kind})" for alias, kind in sorted(EVENT_TYPE_ALIASES.items()) if alias != kind),
        json_schema_extra={"enum": list(EVENT_TYPES)},
    ),
]


def _event_kind(value: str) -> str:
    kind = EVENT_TYPE_ALIASES.get(value.strip().lower())
    if kind is None:
        raise ValueError(f"must be one of {list(EVENT_TYPES)}, not {value!r}")
    return kind


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


# ----------------------------------------------------------------------------------- requests
class EventIn(_Strict):
    """One shopper event. ``timestamp``: default now. ``event_id``: a client's id for the event; an
    event sent again with the same id is stored once (safe retries)."""

    user_id: IdStr
    item_id: IdStr
    event_type: EventTypeIn = "view"
    timestamp: TimeIn = None
    value: float | None = Field(default=None, ge=-MAX_VALUE, le=MAX_VALUE, allow_inf_nan=False)
    event_id: IdStr | None = None

    @field_validator("event_type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        return _event_kind(value)

    def record(self, event_id: str | None = None) -> EventRecord:
        stamp = time.time() if self.timestamp is None else self.timestamp
        return EventRecord(self.user_id, self.item_id, self.event_type, stamp, self.value, self.event_id or event_id)


class EventBatchIn(_Strict):
    events: list[EventIn] = Field(min_length=1)


class SessionEventIn(_Strict):
    item_id: IdStr
    event_type: EventTypeIn = "view"

    @field_validator("event_type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        return _event_kind(value)


class AnonymousIn(_Strict):
    """An anonymous session: the item ids it touched (oldest first), or its events."""

    items: list[IdStr] | None = Field(default=None, max_length=1000)
    events: list[SessionEventIn] | None = Field(default=None, max_length=1000)
    k: int = Field(default=10, ge=1, le=MAX_K)
    category: LineStr | None = None
    in_stock: bool = True
    min_price: float | None = Field(default=None, ge=0, le=MAX_PRICE, allow_inf_nan=False)
    max_price: float | None = Field(default=None, ge=0, le=MAX_PRICE, allow_inf_nan=False)
    exclude_purchased: bool = True
    diversity: float = Field(default=0.0, ge=0.0, le=1.0)
    min_categories: int = Field(default=0, ge=0, le=MAX_K)
    outside_share: float = Field(default=0.0, ge=0.0, le=1.0)


class ItemIn(_Strict):
    """A catalog item's fields (PUT replaces the whole item)."""

    title: _free_text(2000) = ""  # type: ignore[valid-type]
    description: _free_text(20000) = ""  # type: ignore[valid-type]
    category: LineStr = ""
    brand: LineStr = ""
    price: float | None = Field(default=None, ge=0, le=MAX_PRICE, allow_inf_nan=False)
    tags: list[Annotated[str, Field(max_length=200), AfterValidator(no_line_controls)]] | LineStr = Field(
        default_factory=list, description="a list of tags (at most 100), or one comma-separated string"
    )
    in_stock: bool = True
    created_at: TimeIn = None

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str] | str) -> list[str] | str:
        if isinstance(value, list) and len(value) > 100:
            raise ValueError("at most 100 tags")
        return value

    def record(self, item_id: str) -> ItemRecord:
        tags = self.tags if isinstance(self.tags, list) else self.tags.split(",")
        created = time.time() if self.created_at is None else self.created_at
        return ItemRecord(
            item_id=item_id,
            title=self.title,
            description=self.description,
            category=self.category,
            brand=self.brand,
            price=self.price,
            tags=", ".join(t.strip() for t in tags if t.strip()),
            in_stock=self.in_stock,
            created_at=created,
        )


class ItemWithIdIn(ItemIn):
    item_id: IdStr


class ItemBatchIn(_Strict):
    items: list[ItemWithIdIn] = Field(min_length=1)


class ReloadIn(_Strict):
    model_dir: Annotated[str, Field(min_length=1, max_length=4096), AfterValidator(no_line_controls)] | None = Field(
        default=None, description="a model folder; default: the one being served"
    )


class SegmentsIn(_Strict):
    """Recompute segments: `k` of them, or as many as the silhouette chooses (2 to 12) when absent."""

    k: int | None = Field(default=None, ge=1, le=100)


# ----------------------------------------------------------------------------------- answers
class ErrorOut(BaseModel):
    """Every 4xx and 5xx answer: a code, a message naming the field, and for 422 each problem."""

    error: str = Field(description="a short code: invalid_request, not_found, unauthorized, too_large, ...")
    message: str
    detail: list[FieldProblem] | None = None


class FieldProblem(BaseModel):
    field: str = Field(description="where: body.events[3].item_id, query.k, path.user_id, ...")
    message: str


class ReasonOut(BaseModel):
    kind: str
    text: str
    item_id: str | None = Field(description="the item the reason points at (bought, viewed), if any")


class RecommendationOut(BaseModel):
    item_id: str
    score: float | None
    title: str
    category: str
    brand: str
    price: float | None
    in_stock: bool
    reason: ReasonOut


class RecommendationsOut(BaseModel):
    model_version: str
    items: list[RecommendationOut]
    user_id: str | None = None
    user_known: bool | None = Field(
        default=None,
        description="with a user_id: false where the store holds no event of the shopper (a first visit, or "
        "a shopper deleted): the list is then what every newcomer gets (the most popular, and the newest "
        "for new arrivals), never a 404",
    )
    item_id: str | None = None
    query: str | None = None


class ItemOut(BaseModel):
    item_id: str
    title: str
    description: str
    category: str
    brand: str
    price: float | None
    tags: str
    in_stock: bool
    created_at: float | None


class UserOut(BaseModel):
    user_id: str
    first_seen: float
    last_seen: float
    events: int


class UsersOut(BaseModel):
    users: list[UserOut]


class ShareOut(BaseModel):
    name: str
    share: float


class TermOut(BaseModel):
    term: str
    weight: float


class ActivityOut(BaseModel):
    events: int
    events_read: int
    by_type: dict[str, int]
    distinct_items: int
    first_seen: str | None
    last_seen: str | None


class PriceBandOut(BaseModel):
    low: float
    median: float
    high: float
    catalog_percentile: float
    level: str


class LatestItemOut(BaseModel):
    item_id: str
    title: str
    event_type: str


class IntentOut(BaseModel):
    events: int
    started: str | None
    categories: list[ShareOut]
    items: list[LatestItemOut]
    keywords: list[TermOut]


class SegmentRefOut(BaseModel):
    segment_id: int
    name: str | None


class ProfileOut(BaseModel):
    user_id: str
    activity: ActivityOut
    categories: list[ShareOut]
    brands: list[ShareOut]
    price_band: PriceBandOut | None
    recent_intent: IntentOut
    keywords: list[TermOut]
    segment: SegmentRefOut | None


class SegmentOut(BaseModel):
    segment_id: int
    name: str
    size: int
    keywords: list[TermOut]
    categories: list[ShareOut]
    criterion: dict[str, Any]
    created_at: float


class SegmentsOut(BaseModel):
    segments: list[SegmentOut]


class SegmentPageOut(SegmentOut):
    users: list[str]
    limit: int
    offset: int


class RecomputedSegmentsOut(SegmentsOut):
    criterion: dict[str, Any]


class RecordedOut(BaseModel):
    recorded: int = Field(description="events stored by this request")
    duplicates: int = Field(0, description="events whose event_id was stored before (not stored again)")


class UpsertedOut(BaseModel):
    created: int
    updated: int


class DeletedOut(BaseModel):
    user_id: str
    removed: dict[str, int]


class ReloadedOut(BaseModel):
    model: str
    model_version: str


class HealthOut(BaseModel):
    status: str = Field(description="ok, or unavailable while the store does not answer")


class PageConfigOut(BaseModel):
    events_key: str | None = Field(
        description="the key that may only post events (SHELFWISE_EVENTS_KEY), for a storefront's page; null: none"
    )
    currency: str | None = Field(description="the catalog's currency (SHELFWISE_CURRENCY, ISO 4217); null: not set")


class ReadyOut(BaseModel):
    status: str = Field(description="ready, or starting while a part is not loaded yet")
    waiting_for: list[str] = Field(
        default_factory=list, description="what is not ready yet: 'store' (does not answer), 'encoder' (loading)"
    )


class StatusOut(HealthOut):
    model: str
    model_version: str
    model_dir: str
    items: int
    items_known_to_model: int
    store: str
    schema_version: int
    pid: int = Field(description="the process that answered (one of the workers)")
    change_id: int = Field(description="the last change of the store's feed this process has applied")
    text_ready: bool = Field(
        description="whether this process has loaded its text encoder and spelling index (a start from the "
        "serving artifacts loads them in the background; until then a search or a new item waits for them)"
    )


ErrorOut.model_rebuild()


class ModelOut(BaseModel):
    model: str
    model_version: str
    items: int
    items_known_to_model: int
