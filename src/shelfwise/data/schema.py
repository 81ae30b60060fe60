"""Record schemas: what an event and a catalog item are."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
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
