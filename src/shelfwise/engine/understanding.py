"""What the engine knows of shoppers and words: the taste vector, hybrid search and profiles.

Functions of plain arrays and records (the `Engine` supplies them), so each piece reads and tests alone.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import datetime, timezone

import numpy as np

from shelfwise.data.schema import DEFAULT_EVENT_WEIGHTS
from shelfwise.retrieval.lexical import tokenize
from shelfwise.store import EventRecord, ItemRecord, UserSummary

#: A gap longer than this between two events starts a new session ("recent intent" is the last one).
SESSION_GAP_SECONDS = 30 * 60
#: Each step back in a history keeps this share of an event's weight in the taste vector.
TASTE_DECAY = 0.95
#: Search: a shopper's taste re-orders only among the items whose relevance is at least this share
#: of the best one's, then among the rest.
STRONG_SHARE = 0.5
#: The semantic floor of a catalog (`noise_floor`): this quantile of the best cosine that random
#: letter strings reach in it, over this many strings.
NOISE_QUANTILE = 0.98
NOISE_SAMPLES = 128


def noise_floor(vectors: np.ndarray, encode, *, samples: int = NOISE_SAMPLES, seed: int = 0) -> float:
    """The cosine below which a query's nearest items are noise in this catalog: the
    `NOISE_QUANTILE` quantile, over `samples` random letter strings, of the best cosine any item
    reaches to one. An absolute cosine does not do: how high gibberish reaches depends on the
    catalog's texts (on the tuning splits the best item reached 0.29 to 0.46 for half such strings
    on real catalogs, 0.2 on the synthetic shop, where a real synonym reached 0.37). `encode` maps
    a list of strings to unit vectors."""
    if len(vectors) == 0:
        return 1.0
    rng = np.random.default_rng(seed)
    letters = list("abcdefghijklmnopqrstuvwxyz")
    strings = [
        " ".join("".join(rng.choice(letters, int(rng.integers(4, 9)))) for _ in range(int(rng.integers(1, 4))))
        for _ in range(samples)
    ]
    best = np.max(np.asarray(vectors, dtype=np.float32) @ np.asarray(encode(strings), dtype=np.float32).T, axis=0)
    return float(np.quantile(best, NOISE_QUANTILE))


def taste_vector(positions: np.ndarray, kinds: Sequence[str], vectors: np.ndarray) -> np.ndarray | None:
    """A shopper's unit vector in the item text space: their items' vectors weighted by event type
    (a purchase counts more than a view) and recency. None for an empty history."""
    if len(positions) == 0:
        return None
    age = np.arange(len(positions))[::-1]
    weights = np.array([DEFAULT_EVENT_WEIGHTS.get(kind, 1.0) for kind in kinds]) * TASTE_DECAY**age
    vector = weights @ vectors[positions].astype(np.float64)
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else None


def fuse_search(
    *,
    semantic: np.ndarray,
    lexical: np.ndarray,
    affinity: np.ndarray | None,
    lexical_weight: float,
    personal_weight: float,
) -> np.ndarray:
    """One score per candidate on absolute scales, so a strong match stays strong whatever else the
    catalog holds: the query's cosine (below 0 counts 0) and the lexical match (about 1 for a full
    match, `LexicalIndex.match`), mixed by `lexical_weight`; plus `personal_weight` times the
    shopper's affinity (their taste vector's cosine, below 0 counts 0) when there is a shopper."""
    score = (1.0 - lexical_weight) * np.clip(semantic, 0.0, None) + lexical_weight * lexical
    if affinity is not None and personal_weight > 0:
        score = score + personal_weight * np.clip(affinity, 0.0, None)
    return score


def rank_search(
    candidates: np.ndarray,
    query_vector: np.ndarray,
    lexical: np.ndarray,
    vectors: np.ndarray,
    taste: np.ndarray | None,
    *,
    k: int,
    lexical_weight: float,
    personal_weight: float,
    semantic_floor: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The best `k` of `candidates` (catalog positions) that match the query, best first (ties to
    the lower position): their positions, scores, and the shopper's affinity to each (None without
    one). `lexical` holds the lexical match (`LexicalIndex.match`) of the whole catalog.

    A candidate matches when it holds a query word (after spelling correction) or its cosine to the
    query is above `semantic_floor` (the catalog's `noise_floor`); none matching gives an empty
    answer. The shopper's taste (`fuse_search`) re-orders matching items within two tiers, never
    across them: first those whose relevance without taste is at least `STRONG_SHARE` of the best
    one, then the rest, so a taste never pushes the items that match the words best out of the top."""
    candidates = np.asarray(candidates, dtype=np.int64)
    semantic = vectors[candidates] @ query_vector
    words = lexical[candidates]
    matching = (words > 0) | (semantic > semantic_floor)
    candidates, semantic, words = candidates[matching], semantic[matching], words[matching]
    if len(candidates) == 0:
        return candidates, np.zeros(0), None if taste is None else np.zeros(0)
    relevance = fuse_search(
        semantic=semantic, lexical=words, affinity=None, lexical_weight=lexical_weight, personal_weight=0.0
    )
    affinity = None if taste is None else vectors[candidates] @ taste
    scores = fuse_search(
        semantic=semantic,
        lexical=words,
        affinity=affinity,
        lexical_weight=lexical_weight,
        personal_weight=personal_weight,
    )
    weaker = relevance < STRONG_SHARE * relevance.max()
    order = np.lexsort((candidates, -scores, weaker))[:k]
    return candidates[order], scores[order], None if affinity is None else affinity[order]


def _iso(stamp: float | None) -> str | None:
    """ISO 8601 of a time; None where it is unknown or no calendar date (a store written before the
    service checked times may hold such)."""
    if stamp is None or not math.isfinite(stamp):
        return None
    try:
        return datetime.fromtimestamp(stamp, tz=timezone.utc).isoformat().replace("+00:00", "Z")
    except (OverflowError, ValueError, OSError):
        return None


def _shares(weights: dict[str, float], top: int) -> list[dict]:
    total = sum(weights.values())
    ranked = sorted(weights.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    return [{"name": name, "share": round(value / total, 4)} for name, value in ranked] if total > 0 else []


def price_band(prices: np.ndarray, weights: np.ndarray, catalog_prices: np.ndarray) -> dict | None:
    """The shopper's price band: weighted quartiles of what they interacted with, and where their
    median sits in the catalog (``budget`` in its lower third, ``premium`` in its upper third)."""
    known = np.isfinite(prices)
    if not known.any():
        return None
    prices, weights = prices[known], weights[known]
    order = np.argsort(prices)
    prices, weights = prices[order], weights[order]
    cumulative = np.cumsum(weights) / weights.sum()
    low, median, high = (
        float(prices[min(int(np.searchsorted(cumulative, q)), len(prices) - 1)]) for q in (0.25, 0.5, 0.75)
    )
    reference = np.sort(catalog_prices[np.isfinite(catalog_prices)])
    percentile = float(np.searchsorted(reference, median, side="right") / len(reference)) if len(reference) else 0.5
    level = "budget" if percentile < 1 / 3 else ("premium" if percentile > 2 / 3 else "mid-range")
    return {"low": low, "median": median, "high": high, "catalog_percentile": round(percentile, 4), "level": level}


def nearest_terms(
    taste: np.ndarray | None,
    terms: Sequence[str],
    term_vectors: np.ndarray,
    *,
    allowed: set[str] | None,
    count: int,
) -> list[dict]:
    """The `count` terms whose vectors are closest to `taste`, among `allowed` where that leaves
    enough of them; each with its cosine as weight. A word's plural or singular twin ("mug" and
    "mugs") counts once, as the closer of the two."""
    if taste is None or len(terms) == 0:
        return []
    scores = term_vectors @ taste
    if allowed:
        inside = np.array([t in allowed for t in terms])
        if inside.sum() >= count:
            scores = np.where(inside, scores, -np.inf)
    chosen: list[dict] = []
    stems: set[str] = set()
    for i in np.argsort(-scores, kind="stable"):
        if len(chosen) == count or not np.isfinite(scores[i]):
            break
        stem = singular(terms[i])
        if stem not in stems:
            stems.add(stem)
            chosen.append({"term": terms[i], "weight": round(float(scores[i]), 4)})
    return chosen


def singular(word: str) -> str:
    """An English word's singular by its ending (mugs, boxes, candies, glasses -> mug, box, candy,
    glass): enough to tell twins apart in a list of interests, not a lemmatiser."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith(("ches", "shes", "sses", "xes", "zes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def last_session(events: Sequence[EventRecord]) -> list[EventRecord]:
    """The events of the shopper's latest session (no gap over `SESSION_GAP_SECONDS`), oldest first."""
    if not events:
        return []
    start = len(events) - 1
    while start > 0 and events[start].timestamp - events[start - 1].timestamp <= SESSION_GAP_SECONDS:
        start -= 1
    return list(events[start:])


def build_profile(
    user_id: str,
    events: Sequence[EventRecord],
    summary: UserSummary | None,
    *,
    index_of: dict[str, int],
    records: Sequence[ItemRecord],
    catalog_prices: np.ndarray,
    vectors: np.ndarray,
    terms: Sequence[str],
    term_vectors: np.ndarray,
    top: int = 5,
    keywords: int = 10,
) -> dict:
    """A shopper's profile from their latest events (oldest first): activity, category and brand
    shares (weighted by event type), price band, recent intent and interest keywords."""
    known = [(index_of[e.item_id], e) for e in events if e.item_id in index_of]
    categories: dict[str, float] = defaultdict(float)
    brands: dict[str, float] = defaultdict(float)
    weights = np.array([DEFAULT_EVENT_WEIGHTS.get(e.event_type, 1.0) for _, e in known])
    for (position, _), weight in zip(known, weights, strict=True):
        record = records[position]
        if record.category:
            categories[record.category] += weight
        if record.brand:
            brands[record.brand] += weight
    positions = np.array([p for p, _ in known], dtype=np.int64)
    kinds = [e.event_type for _, e in known]
    taste = taste_vector(positions, kinds, vectors)
    own_words = {word for p in set(positions.tolist()) for word in tokenize(_item_words(records[p]))}
    prices = np.array([math.nan if records[p].price is None else records[p].price for p in positions], dtype=float)
    session = last_session(events)
    session_known = [(index_of[e.item_id], e) for e in session if e.item_id in index_of]
    session_positions = np.array([p for p, _ in session_known], dtype=np.int64)
    session_taste = taste_vector(session_positions, [e.event_type for _, e in session_known], vectors)
    session_categories: dict[str, float] = defaultdict(float)
    for position, event in session_known:
        if records[position].category:
            session_categories[records[position].category] += DEFAULT_EVENT_WEIGHTS.get(event.event_type, 1.0)
    return {
        "user_id": user_id,
        "activity": {
            "events": summary.events if summary else len(events),
            "events_read": len(events),
            "by_type": dict(Counter(e.event_type for e in events).most_common()),
            "distinct_items": len({e.item_id for e in events}),
            "first_seen": _iso(summary.first_seen if summary else events[0].timestamp),
            "last_seen": _iso(summary.last_seen if summary else events[-1].timestamp),
        },
        "categories": _shares(categories, top),
        "brands": _shares(brands, top),
        "price_band": price_band(prices, weights, catalog_prices) if len(prices) else None,
        "recent_intent": {
            "events": len(session),
            "started": _iso(session[0].timestamp) if session else None,
            "categories": _shares(session_categories, 3),
            "items": _latest_items(session_known, records, 5),
            "keywords": nearest_terms(session_taste, terms, term_vectors, allowed=own_words, count=3),
        },
        "keywords": nearest_terms(taste, terms, term_vectors, allowed=own_words, count=keywords),
    }


def _item_words(record: ItemRecord) -> str:
    return " ".join((record.title, record.category, record.brand, record.tags))


def _latest_items(known: list[tuple[int, EventRecord]], records: Sequence[ItemRecord], count: int) -> list[dict]:
    """The last `count` distinct items of a history, latest first, each with its latest event type."""
    out, seen = [], set()
    for position, event in reversed(known):
        if position not in seen:
            seen.add(position)
            out.append(
                {"item_id": records[position].item_id, "title": records[position].title, "event_type": event.event_type}
            )
            if len(out) == count:
                break
    return out
