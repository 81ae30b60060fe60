"""A synthetic shop for the demo and the tests.

A category tree with generated titles, descriptions, brands and prices; shoppers with latent tastes
(departments, product types, styles, budget); sessions of views, clicks, carts, purchases and
favourites over weeks; new items arriving while the log runs. Personal taste dominates item quality,
so a personalised recommender must beat popularity here, as it must in a real shop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from shelfwise.errors import ConfigError

# department -> subcategory -> [(product type, price low, price high, materials)]
CATALOG_TREE: dict[str, dict[str, list[tuple[str, float, float, tuple[str, ...]]]]] = {
    "Home": {
        "Kitchen": [
            ("Mug", 6, 25, ("ceramic", "stoneware", "enamel")),
            ("Teapot", 18, 60, ("porcelain", "cast iron", "glass")),
            ("Chef Knife", 25, 140, ("steel", "damascus steel")),
        ],
        "Decor": [
            ("Scented Candle", 8, 40, ("soy wax", "beeswax")),
            ("Vase", 15, 80, ("glass", "ceramic", "rattan")),
            ("Cushion Cover", 10, 35, ("linen", "velvet", "cotton")),
        ],
        "Bath": [("Bath Towel", 12, 45, ("cotton", "bamboo")), ("Shower Curtain", 15, 40, ("polyester", "linen"))],
    },
    "Electronics": {
        "Audio": [
            ("Wireless Headphones", 40, 350, ("aluminium", "plastic")),
            ("Bluetooth Speaker", 25, 250, ("fabric", "rubber")),
        ],
        "Computing": [
            ("Mechanical Keyboard", 45, 220, ("aluminium", "plastic")),
            ("Wireless Mouse", 15, 90, ("plastic",)),
            ("Monitor Stand", 20, 90, ("wood", "steel")),
        ],
        "Phone Accessories": [("Phone Case", 8, 45, ("silicone", "leather")), ("USB-C Charger", 12, 60, ("plastic",))],
    },
    "Fashion": {
        "Women": [("Summer Dress", 25, 120, ("cotton", "linen", "silk")), ("Scarf", 12, 70, ("wool", "silk"))],
        "Men": [("Oxford Shirt", 25, 90, ("cotton", "linen")), ("Rain Jacket", 50, 220, ("nylon", "gore-tex"))],
        "Shoes": [("Running Sneakers", 45, 180, ("mesh", "knit")), ("Leather Boots", 70, 260, ("leather", "suede"))],
    },
    "Sports": {
        "Fitness": [("Yoga Mat", 15, 90, ("cork", "rubber", "tpe")), ("Dumbbell Set", 30, 200, ("steel", "neoprene"))],
        "Outdoor": [("Camping Tent", 60, 400, ("nylon", "polyester")), ("Hiking Backpack", 35, 200, ("nylon",))],
        "Cycling": [("Bike Helmet", 30, 180, ("polycarbonate",)), ("Bike Light", 10, 70, ("aluminium", "plastic"))],
    },
    "Beauty": {
        "Skincare": [
            ("Face Moisturizer", 8, 70, ("aloe", "shea butter")),
            ("Vitamin C Serum", 12, 90, ("hyaluronic acid", "niacinamide")),
        ],
        "Hair": [("Shampoo", 5, 35, ("argan oil", "coconut")), ("Hair Dryer", 25, 250, ("ceramic", "ionic"))],
    },
    "Toys": {
        "Games": [("Board Game", 15, 70, ("cardboard", "wood")), ("Jigsaw Puzzle", 8, 40, ("cardboard",))],
        "Kids": [("Building Blocks", 15, 120, ("plastic", "wood")), ("Plush Toy", 8, 45, ("cotton", "fleece"))],
    },
    "Grocery": {
        "Coffee & Tea": [("Coffee Beans", 7, 30, ("arabica", "robusta")), ("Green Tea", 4, 25, ("sencha", "matcha"))],
        "Snacks": [("Dark Chocolate", 2, 12, ("cocoa",)), ("Roasted Nuts", 3, 15, ("almond", "cashew"))],
    },
}
STYLES = ("minimalist", "vintage", "eco-friendly", "premium", "sporty", "cozy", "bold", "classic")
COLORS = ("black", "white", "sage green", "navy", "terracotta", "sand", "charcoal", "coral", "ivory", "mustard")
BRAND_SYLLABLES = ("nor", "vel", "ka", "lum", "bri", "tor", "sa", "mi", "zen", "ar", "do", "qui", "pel", "ost")
STYLE_PHRASES = {
    "minimalist": "clean lines and a quiet, clutter-free look",
    "vintage": "a retro look inspired by classic designs",
    "eco-friendly": "sustainably sourced materials and plastic-free packaging",
    "premium": "top-grade materials and careful craftsmanship",
    "sporty": "a light, active design made for movement",
    "cozy": "a soft, warm feel for relaxed days at home",
    "bold": "striking colours and a design that stands out",
    "classic": "a timeless design that never goes out of style",
}


@dataclass
class SyntheticShop:
    """A generated catalog and behaviour log, in the canonical frames of `read_items` / `read_events`."""

    items: pd.DataFrame
    events: pd.DataFrame
    start: pd.Timestamp
    end: pd.Timestamp


def _brand_names(rng: np.random.Generator, count: int) -> list[str]:
    names: set[str] = set()
    while len(names) < count:
        parts = rng.choice(BRAND_SYLLABLES, size=rng.integers(2, 4))
        names.add("".join(parts).capitalize())
    return sorted(names)


def _product_types() -> list[tuple[str, str, str, float, float, tuple[str, ...]]]:
    return [
        (department, sub, name, low, high, materials)
        for department, subs in CATALOG_TREE.items()
        for sub, types in subs.items()
        for name, low, high, materials in types
    ]


def generate_shop(
    *,
    n_items: int = 2000,
    n_users: int = 1500,
    days: int = 56,
    start: str = "2026-01-05",
    new_item_share: float = 0.15,
    seed: int = 0,
) -> SyntheticShop:
    """Generate a shop. Deterministic for a given `seed`."""
    if n_items < 50 or n_users < 10 or days < 7:
        raise ConfigError("generate_shop needs n_items >= 50, n_users >= 10 and days >= 7.")
    if not 0.0 <= new_item_share < 1.0:
        raise ConfigError(f"new_item_share must be in [0, 1). Got {new_item_share!r}.")
    rng = np.random.default_rng(seed)
    begin = pd.Timestamp(start, tz="UTC")
    catalog = _make_catalog(rng, n_items, days, new_item_share, begin)
    shoppers = _make_shoppers(rng, n_users, catalog)
    events: list[tuple[int, int, str, float, float]] = []
    items_by_type = [np.flatnonzero(catalog.item_type == t) for t in range(len(catalog.types))]
    for user in range(n_users):
        n_sessions = 1 + rng.poisson(shoppers.activity[user] * days / 7.0)
        for session_start in np.sort(rng.uniform(0, days, size=n_sessions)):
            product_type = rng.choice(len(catalog.types), p=shoppers.type_affinity[user])
            pool = items_by_type[product_type]
            pool = pool[catalog.created[pool] <= session_start]
            if len(pool):
                events.extend(_session(rng, user, session_start, pool, catalog, shoppers))
    frame = pd.DataFrame(events, columns=["user", "item", "event_type", "day", "value"])
    frame = frame.sort_values("day", kind="stable").reset_index(drop=True)
    log = pd.DataFrame(
        {
            "user_id": [f"u{u:05d}" for u in frame["user"]],
            "item_id": catalog.items["item_id"].to_numpy()[frame["item"].to_numpy()],
            "event_type": frame["event_type"].to_numpy(),
            "timestamp": begin + pd.to_timedelta(frame["day"].to_numpy(), unit="D"),
            "value": frame["value"].to_numpy(dtype=float),
        }
    )
    log["timestamp"] = pd.to_datetime(log["timestamp"], utc=True).dt.floor("s")
    return SyntheticShop(items=catalog.items, events=log, start=begin, end=begin + pd.Timedelta(days=days))


@dataclass
class _Catalog:
    """The generated items and the hidden traits shoppers choose them by."""

    items: pd.DataFrame
    types: list[tuple]
    type_department: np.ndarray
    item_type: np.ndarray
    item_style: np.ndarray
    item_quality: np.ndarray
    item_brand: np.ndarray
    tier: np.ndarray
    created: np.ndarray


@dataclass
class _Shoppers:
    """Each shopper's hidden tastes."""

    type_affinity: np.ndarray
    style_taste: np.ndarray
    brand_taste: np.ndarray
    budget: np.ndarray
    activity: np.ndarray


def _make_catalog(
    rng: np.random.Generator, n_items: int, days: int, new_item_share: float, begin: pd.Timestamp
) -> _Catalog:
    types = _product_types()
    departments = list(CATALOG_TREE)
    type_department = np.array([departments.index(t[0]) for t in types])
    brands_by_department = {d: _brand_names(rng, 5) for d in departments}
    brand_position = {d: {b: j for j, b in enumerate(bs)} for d, bs in brands_by_department.items()}
    item_type = rng.integers(0, len(types), size=n_items)
    item_style = rng.integers(0, len(STYLES), size=n_items)
    item_quality = rng.normal(0.0, 0.35, size=n_items)
    is_new = rng.random(n_items) < new_item_share
    created = np.where(
        is_new,
        rng.uniform(0.15, 0.95, size=n_items) * days,
        -rng.uniform(1, 365, size=n_items),
    )
    rows = []
    tier = np.empty(n_items)
    item_brand = np.empty(n_items, dtype=int)
    for index in range(n_items):
        department, sub, noun, low, high, materials = types[item_type[index]]
        brand = str(rng.choice(brands_by_department[department]))
        item_brand[index] = brand_position[department][brand]
        tier[index] = rng.beta(2, 2)
        price = round(float(low + (high - low) * tier[index]) - 0.01, 2)
        style = STYLES[item_style[index]]
        color = str(rng.choice(COLORS))
        material = str(rng.choice(materials))
        title = f"{brand} {style.replace('-', ' ').title()} {color.title()} {material.title()} {noun}"
        description = (
            f"A {style} {noun.lower()} in {color}, made of {material}. "
            f"Designed with {STYLE_PHRASES[style]}. Part of our {sub.lower()} range from {brand}."
        )
        rows.append(
            {
                "item_id": f"SKU-{index:05d}",
                "title": title,
                "description": description,
                "category": f"{department} > {sub} > {noun}",
                "brand": brand,
                "price": max(price, 0.99),
                "tags": [style, color, material],
                "in_stock": bool(rng.random() > 0.05),
                "created_at": begin + pd.Timedelta(days=float(created[index])),
            }
        )
    items = pd.DataFrame(rows)
    items["created_at"] = pd.to_datetime(items["created_at"], utc=True)
    return _Catalog(items, types, type_department, item_type, item_style, item_quality, item_brand, tier, created)


def _make_shoppers(rng: np.random.Generator, n_users: int, catalog: _Catalog) -> _Shoppers:
    n_types = len(catalog.types)
    department_taste = rng.dirichlet(np.full(len(CATALOG_TREE), 0.25), size=n_users)
    type_taste = rng.dirichlet(np.full(n_types, 0.4), size=n_users)
    type_affinity = department_taste[:, catalog.type_department] * type_taste
    type_affinity /= type_affinity.sum(axis=1, keepdims=True)
    style_taste = rng.normal(0.0, 1.0, size=(n_users, len(STYLES)))
    brand_taste = rng.normal(0.0, 0.7, size=(n_users, 5))
    budget = rng.beta(2, 2, size=n_users)
    activity = rng.lognormal(mean=0.0, sigma=0.8, size=n_users)
    return _Shoppers(type_affinity, style_taste, brand_taste, budget, activity)


def _session(
    rng: np.random.Generator, user: int, session_start: float, pool: np.ndarray, catalog: _Catalog, shoppers: _Shoppers
) -> list[tuple[int, int, str, float, float]]:
    """One shopping session among the items of one product type: views and clicks, then maybe a
    cart and a purchase of the best of them, or a favourite."""
    utility = (
        1.2 * shoppers.style_taste[user, catalog.item_style[pool]]
        + shoppers.brand_taste[user, catalog.item_brand[pool]]
        - 3.0 * np.abs(catalog.tier[pool] - shoppers.budget[user])
        + catalog.item_quality[pool]
    )
    weights = np.exp(utility - utility.max())
    weights /= weights.sum()
    n_views = min(len(pool), 1 + rng.poisson(3))
    viewed = rng.choice(pool, size=n_views, replace=False, p=weights)
    events: list[tuple[int, int, str, float, float]] = []
    clock = session_start
    for item in viewed:
        clock += rng.exponential(2.0) / 1440.0
        kind = "click" if rng.random() < 0.3 else "view"
        events.append((user, int(item), kind, clock, np.nan))
    best = viewed[np.argmax(utility[np.searchsorted(pool, viewed)])]
    if rng.random() < 0.45:
        clock += rng.exponential(3.0) / 1440.0
        events.append((user, int(best), "cart", clock, 1.0))
        if rng.random() < 0.6:
            clock += rng.exponential(5.0) / 1440.0
            events.append((user, int(best), "purchase", clock, float(1 + rng.poisson(0.3))))
    elif rng.random() < 0.1:
        events.append((user, int(best), "favorite", clock + 1e-4, np.nan))
    return events
