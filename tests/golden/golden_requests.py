"""The fixed requests of the golden answers (`build.py` records them, `test_golden.py` replays them).

They cover every list route with its options: a shopper's list with filters, diversity and the
cross-category options, anonymous sessions by items and by events, similar items (also across
categories), new arrivals, search (plain, personal, lexical-only), an event that changes the next
list, and items added after training, ranked at once beside the trained ones.
"""

from __future__ import annotations

from typing import Any

from shelfwise.data.dataset import Dataset

KEY = "golden-key-0123456789abcdefghijklmnopqrstuvwxyz"
AUTH = {"Authorization": f"Bearer {KEY}"}
#: Times of the events the requests post (fixed, so the answers never depend on the clock).
POSTED_AT = "2026-02-20T12:00:00Z"
#: The event types of the anonymous session's events.
KINDS = ("view", "cart", "purchase")
#: Items the requests add after training: text only, no events.
NEW_ITEMS = [
    {
        "item_id": "golden-new-1",
        "title": "Premium stainless steel chef knife",
        "description": "A sharp kitchen knife for everyday cooking",
        "category": "Home > Kitchen",
        "brand": "Golden",
        "price": 42.0,
        "created_at": "2026-02-19T08:00:00Z",
    },
    {
        "item_id": "golden-new-2",
        "title": "Wireless noise cancelling headphones",
        "description": "Over-ear bluetooth headphones with a long battery life",
        "category": "Electronics > Audio",
        "brand": "Golden",
        "price": 99.0,
        "created_at": "2026-02-19T09:00:00Z",
    },
]


def requests_for(dataset: Dataset) -> list[dict[str, Any]]:
    """The requests, in order: each ``{"name", "method", "path", "json"?}``; list answers are compared."""
    users = [str(dataset.user_ids[i]) for i in (3, 17, 42)]
    items = dataset.items
    categories = items["category"].dropna()
    category = str(categories.value_counts().index[0])
    top = category.split(" > ")[0]
    item = str(items["item_id"].iloc[5])
    other = str(items["item_id"].iloc[11])
    history = [str(i) for i in items["item_id"].iloc[[1, 2, 3]]]
    out: list[dict[str, Any]] = []

    def get(name: str, path: str) -> None:
        out.append({"name": name, "method": "GET", "path": path})

    for user in users:
        get(f"recommendations {user}", f"/v1/users/{user}/recommendations?k=10")
    user = users[0]
    get("filtered by category", f"/v1/users/{user}/recommendations?k=10&category={top}")
    get("filtered by price", f"/v1/users/{user}/recommendations?k=10&min_price=5&max_price=40")
    get("any stock, purchases kept", f"/v1/users/{user}/recommendations?k=10&in_stock=false&exclude_purchased=false")
    get("seen excluded", f"/v1/users/{user}/recommendations?k=10&exclude_seen=true")
    get("diversity", f"/v1/users/{user}/recommendations?k=10&diversity=0.6")
    get("min categories", f"/v1/users/{user}/recommendations?k=10&min_categories=4")
    get("outside share", f"/v1/users/{user}/recommendations?k=10&outside_share=0.3")
    get("k 25", f"/v1/users/{users[1]}/recommendations?k=25")
    out.append(
        {"name": "anonymous items", "method": "POST", "path": "/v1/recommendations?k=10", "json": {"items": history}}
    )
    out.append(
        {
            "name": "anonymous events",
            "method": "POST",
            "path": "/v1/recommendations?k=10&diversity=0.3",
            "json": {
                "events": [
                    {"item_id": i, "event_type": t} for i, t in zip(history, ("view", "cart", "purchase"), strict=True)
                ]
            },
        }
    )
    get("similar", f"/v1/items/{item}/similar?k=10")
    get("similar across categories", f"/v1/items/{other}/similar?k=10&cross_category=true")
    get("new arrivals", f"/v1/users/{user}/new-arrivals?k=10&days=3650")
    get("search", "/v1/search?q=kitchen&k=10")
    get("search personal", f"/v1/search?q=bag&k=10&user_id={user}&personal_weight=0.5")
    get("search lexical", "/v1/search?q=black&k=10&lexical_weight=1")
    event = {"user_id": users[2], "item_id": other, "event_type": "purchase", "timestamp": POSTED_AT}
    out.append({"name": "post an event", "method": "POST", "path": "/v1/events", "json": event})
    get("after the event", f"/v1/users/{users[2]}/recommendations?k=10")
    out.append({"name": "add items", "method": "PUT", "path": "/v1/items", "json": {"items": NEW_ITEMS}})
    for user in users:
        get(f"after new items {user}", f"/v1/users/{user}/recommendations?k=20&in_stock=false")
    get("similar to a new item", "/v1/items/golden-new-1/similar?k=10")
    get("new arrivals with new items", f"/v1/users/{user}/new-arrivals?k=10&days=3650")
    get("search a new item", "/v1/search?q=chef%20knife&k=10")
    return out
