"""Cleaning: HTML and whitespace in text, duplicate events, event weights, k-core filtering."""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Mapping

import numpy as np
import pandas as pd

from shelfwise.data.schema import DEFAULT_EVENT_WEIGHTS, EVENT_TYPES
from shelfwise.errors import ConfigError

logger = logging.getLogger(__name__)

_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")


def clean_text(value: object, *, empty_markers: tuple[str, ...] = ()) -> str | None:
    """Unescape HTML entities, strip tags and normalise whitespace; empty text becomes ``None``."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return None
    text = str(value)
    # Unescape twice: scraped catalogs often hold doubly escaped entities ("&amp;amp;").
    text = html.unescape(html.unescape(text))
    text = _TAG.sub(" ", text)
    text = _SPACE.sub(" ", text).strip()
    if not text or text in empty_markers:
        return None
    return text


def clean_text_column(values: pd.Series, *, empty_markers: tuple[str, ...] = ()) -> pd.Series:
    """`clean_text` over a column, computed once per distinct value."""
    distinct = pd.unique(values.dropna())
    mapping = {value: clean_text(value, empty_markers=empty_markers) for value in distinct}
    return values.map(mapping).astype(object).where(values.notna(), None)


def normalise_category(value: str | None) -> str | None:
    """``"Home>Kitchen >  Mugs"`` → ``"Home > Kitchen > Mugs"``."""
    if value is None:
        return None
    parts = [part.strip() for part in str(value).split(">") if part.strip()]
    return " > ".join(parts) or None


_EVENT_KEY = ("user_id", "item_id", "event_type", "timestamp")


def drop_duplicate_events(events: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Drop rows identical to an earlier one in every column (value included); returns the frame and
    how many went. Rows that differ only in their value are not duplicates: see `merge_order_lines`."""
    duplicated = events.duplicated(keep="first")
    removed = int(duplicated.sum())
    if removed:
        logger.info("dropped %d duplicate rows (identical in every column)", removed)
    return events.loc[~duplicated].reset_index(drop=True), removed


def merge_order_lines(events: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Rows with the same shopper, item, event type and time that differ in their value are lines of
    one order (the same product entered twice with different quantities): they become one row, at the
    first line's place, with the values summed (missing where every line's is). Returns the frame and
    how many rows were folded into another."""
    keys = [c for c in _EVENT_KEY if c in events.columns]
    repeated = events.duplicated(subset=keys, keep=False).to_numpy()
    if not repeated.any() or "value" not in events.columns:
        return events, 0
    lines = events.loc[repeated]
    sums = lines.groupby(keys, sort=False, dropna=False, observed=True)["value"].sum(min_count=1)
    first = ~lines.duplicated(subset=keys, keep="first").to_numpy()
    merged = lines.loc[first].copy()
    merged["value"] = sums.reindex(pd.MultiIndex.from_frame(merged[keys])).to_numpy()
    folded = int(len(lines) - len(merged))
    out = pd.concat([events.loc[~repeated], merged]).sort_index(kind="stable").reset_index(drop=True)
    logger.info("summed %d order lines into the line of the same order they repeat", folded)
    return out, folded


#: The event type a return has while it is read (`readers.read_events`); a data set holds none.
RETURN = "return"


def net_returns(events: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """Take each return (an event of type `RETURN`, its value the quantity returned) out of the same
    shopper's purchases of the item at or before its time, latest purchase first: a purchase whose
    whole quantity came back is removed (its weight with it), one partly returned keeps what was not.
    A purchase without a quantity counts as one unit; a return without one takes back the latest
    purchase whole. Returns themselves are not kept. Returns the frame and what happened, counted."""
    is_return = (events["event_type"] == RETURN).to_numpy()
    counts = {"returns": int(is_return.sum()), "purchases_cancelled_by_returns": 0, "purchases_reduced_by_returns": 0}
    counts["returns_without_a_purchase"] = 0
    if not counts["returns"]:
        return events, counts
    returns = events.loc[is_return]
    pairs = pd.MultiIndex.from_frame(returns[["user_id", "item_id"]]).unique()
    in_pair = pd.MultiIndex.from_frame(events[["user_id", "item_id"]]).isin(pairs)
    bought = events.loc[in_pair & (events["event_type"] == "purchase").to_numpy()]
    quantity = bought["value"].fillna(1.0).astype(float).to_dict()
    by_pair: dict[tuple[str, str], list[tuple[pd.Timestamp, int]]] = {}
    columns = [bought[c] for c in ("user_id", "item_id", "timestamp")]
    for row, user, item, when in zip(bought.index, *columns, strict=True):
        by_pair.setdefault((user, item), []).append((when, row))
    order = returns.sort_values("timestamp", kind="stable")
    for user, item, when, amount in zip(*(order[c] for c in ("user_id", "item_id", "timestamp", "value")), strict=True):
        whole = pd.isna(amount)  # no quantity: the latest purchase comes back whole
        left = 0.0 if whole else float(amount)
        took = False
        for _, row in sorted((p for p in by_pair.get((user, item), ()) if p[0] <= when), reverse=True):
            if quantity[row] <= 0:
                continue
            taken = quantity[row] if whole else min(left, quantity[row])
            quantity[row] -= taken
            left -= 0.0 if whole else taken
            took = True
            if whole or left <= 0:
                break
        counts["returns_without_a_purchase"] += not took
    original = bought["value"].fillna(1.0).astype(float)
    remaining = pd.Series(quantity).reindex(bought.index)
    cancelled = remaining.index[remaining <= 0]
    reduced = remaining.index[(remaining > 0) & (remaining < original)]
    counts["purchases_cancelled_by_returns"] = len(cancelled)
    counts["purchases_reduced_by_returns"] = len(reduced)
    out = events.copy()
    out.loc[reduced, "value"] = remaining.loc[reduced].to_numpy()
    keep = ~is_return
    keep[out.index.get_indexer(cancelled)] = False
    return out.loc[keep].reset_index(drop=True), counts


def resolve_event_weights(weights: Mapping[str, float] | None = None) -> dict[str, float]:
    """Default weights with `weights` laid over them; each must be a known type and a finite number ≥ 0."""
    resolved = dict(DEFAULT_EVENT_WEIGHTS)
    for name, weight in (weights or {}).items():
        if name not in EVENT_TYPES:
            raise ConfigError(f"Unknown event type {name!r} in event weights; valid types are {EVENT_TYPES}.")
        if not np.isfinite(weight) or weight < 0:
            raise ConfigError(f"Event weight for {name!r} must be a finite number >= 0. Got {weight!r}.")
        resolved[name] = float(weight)
    return resolved


def k_core(
    events: pd.DataFrame, *, min_user_items: int = 1, min_item_users: int = 1, max_rounds: int = 100
) -> pd.DataFrame:
    """Iteratively keep users with ≥ `min_user_items` distinct items and items with ≥ `min_item_users` users."""
    if min_user_items < 1 or min_item_users < 1:
        raise ConfigError("k-core thresholds must be integers >= 1.")
    frame = events
    for _ in range(max_rounds):
        pairs = frame[["user_id", "item_id"]].drop_duplicates()
        user_counts = pairs["user_id"].value_counts()
        item_counts = pairs["item_id"].value_counts()
        bad_users = user_counts.index[user_counts < min_user_items]
        bad_items = item_counts.index[item_counts < min_item_users]
        if len(bad_users) == 0 and len(bad_items) == 0:
            break
        frame = frame[~frame["user_id"].isin(bad_users) & ~frame["item_id"].isin(bad_items)]
    return frame.reset_index(drop=True)
