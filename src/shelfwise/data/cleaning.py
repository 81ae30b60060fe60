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


def drop_duplicate_events(events: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Drop exact repeats of (user, item, event type, time); returns the frame and how many went."""
    keys = [c for c in ("user_id", "item_id", "event_type", "timestamp") if c in events.columns]
    duplicated = events.duplicated(subset=keys, keep="first")
    removed = int(duplicated.sum())
    if removed:
        logger.info("dropped %d exact duplicate events", removed)
    return events.loc[~duplicated].reset_index(drop=True), removed


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
