"""Record schemas: what an event and a catalog item are."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from types import MappingProxyType


class EventType(str, Enum):
    """The kinds of shopper behaviour shelfwise understands."""

    VIEW = "view"
    CLICK = "click"
    CART = "cart"
    PURCHASE = "purchase"
    FAVORITE = "favorite"
    RATING = "rating"


EVENT_TYPES: tuple[str, ...] = tuple(t.value for t in EventType)

#: Spellings found in real shop logs, mapped to the canonical event type.
EVENT_TYPE_ALIASES = MappingProxyType(
    {
        **{t: t for t in EVENT_TYPES},
        "pageview": "view",
        "page_view": "view",
        "detail": "view",
        "impression_click": "click",
        "add_to_cart": "cart",
        "addtocart": "cart",
        "add-to-cart": "cart",
        "basket": "cart",
        "buy": "purchase",
        "order": "purchase",
        "transaction": "purchase",
        "favourite": "favorite",
        "fav": "favorite",
        "like": "favorite",
        "wishlist": "favorite",
        "rate": "rating",
        "review": "rating",
    }
)

#: How much one event of each type says about a shopper's interest (configurable per data set).
DEFAULT_EVENT_WEIGHTS = MappingProxyType(
    {"view": 1.0, "click": 1.0, "cart": 3.0, "purchase": 5.0, "favorite": 3.0, "rating": 4.0}
)

EVENT_COLUMNS: tuple[str, ...] = ("user_id", "item_id", "event_type", "timestamp", "value")
REQUIRED_EVENT_COLUMNS: tuple[str, ...] = ("user_id", "item_id", "timestamp")
ITEM_COLUMNS: tuple[str, ...] = (
    "item_id",
    "title",
    "description",
    "category",
    "brand",
    "price",
    "tags",
    "in_stock",
    "created_at",
)
REQUIRED_ITEM_COLUMNS: tuple[str, ...] = ("item_id",)
CATEGORY_SEPARATOR = " > "


@dataclass(frozen=True)
class Event:
    """One thing a shopper did with an item at a time."""

    user_id: str
    item_id: str
    event_type: EventType
    timestamp: datetime
    value: float | None = None


@dataclass(frozen=True)
class Item:
    """A catalog entry. Only `item_id` is required."""

    item_id: str
    title: str | None = None
    description: str | None = None
    category: str | None = None
    brand: str | None = None
    price: float | None = None
    tags: tuple[str, ...] = field(default_factory=tuple)
    in_stock: bool = True
    created_at: datetime | None = None

    @property
    def category_path(self) -> tuple[str, ...]:
        """The category as a path, e.g. ``("Home", "Kitchen", "Mugs")``."""
        if not self.category:
            return ()
        return tuple(part.strip() for part in self.category.split(">") if part.strip())


#: Event and item times the service accepts: from 1995-01-01 UTC ...
EARLIEST_TIME = 788_918_400.0
#: ... to one day past the server's clock (clocks drift; a later time is a bug in the sender).
FUTURE_TOLERANCE_SECONDS = 86_400.0
#: A number from here on is milliseconds since the epoch (JavaScript's ``Date.now()``), converted to
#: seconds; as seconds it would be after the year 5138. From `MICROSECONDS_FROM` on it is refused.
MILLISECONDS_FROM = 1e11
MICROSECONDS_FROM = 1e14


def epoch_seconds(value: datetime | float | int, *, now: float | None = None) -> float:
    """Seconds since the epoch (UTC) of an accepted time: an aware or naive (taken as UTC) datetime,
    or a number of seconds, or of milliseconds (detected by size). Raises `ValueError` saying what
    is accepted for anything else: booleans, NaN, times before `EARLIEST_TIME` or more than
    `FUTURE_TOLERANCE_SECONDS` ahead of `now`."""
    if isinstance(value, bool):
        raise ValueError("must be a time (ISO 8601 or seconds since the epoch), not a boolean")
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
        try:
            seconds = aware.timestamp()
        except (OverflowError, ValueError, OSError):
            raise ValueError(f"{value.isoformat()} is outside the accepted range") from None
    elif isinstance(value, (int, float)):
        seconds = float(value)
        if not math.isfinite(seconds):
            raise ValueError("must be a finite number of seconds since the epoch")
        if seconds >= MICROSECONDS_FROM:
            raise ValueError(
                f"{value!r} is too large for seconds or milliseconds since the epoch (microseconds are not accepted)"
            )
        if seconds >= MILLISECONDS_FROM:
            seconds /= 1000.0
    else:
        raise ValueError(f"must be a time (ISO 8601 or seconds since the epoch), not {type(value).__name__}")
    latest = (time.time() if now is None else now) + FUTURE_TOLERANCE_SECONDS
    if not EARLIEST_TIME <= seconds <= latest:
        raise ValueError(
            "must be between 1995-01-01T00:00:00Z and one day after the server's clock "
            f"(seconds or milliseconds since the epoch, or ISO 8601); got {value!r}"
        )
    return seconds
