"""Checks of what the engine is asked to store, before anything is stored: every problem named with
where it is, all or nothing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from shelfwise.data.schema import EVENT_TYPE_ALIASES, EVENT_TYPES, epoch_seconds
from shelfwise.engine.catalog import CatalogSnapshot
from shelfwise.errors import ConfigError, UnknownIdError
from shelfwise.ranking import check_k
from shelfwise.store import EventRecord, ItemRecord

#: At most this many problems are listed in one error.
MAX_PROBLEMS = 20


def checked_events(events: Sequence[EventRecord], catalog: CatalogSnapshot) -> list[EventRecord]:
    """The events with their types normalised; `UnknownIdError` where the only problems are items
    the catalog does not hold, `ConfigError` for any other (times, types, empty shoppers)."""
    problems = []
    clean = []
    for row, event in enumerate(events):
        try:
            epoch_seconds(event.timestamp)
        except ValueError as exc:
            problems.append(f"events[{row}].timestamp: {exc}")
        kind = EVENT_TYPE_ALIASES.get(str(event.event_type).strip().lower())
        if kind is None:
            problems.append(f"events[{row}].event_type: {event.event_type!r} is not one of {list(EVENT_TYPES)}")
        if event.item_id not in catalog:
            problems.append(f"events[{row}].item_id: unknown item {event.item_id!r}")
        if not str(event.user_id).strip():
            problems.append(f"events[{row}].user_id: must not be empty")
        clean.append(replace(event, event_type=kind or ""))
    if problems:
        unknown_only = all(": unknown item" in p for p in problems)
        error = UnknownIdError if unknown_only else ConfigError
        raise error(_listed(problems))
    return clean


def checked_items(records: Sequence[ItemRecord]) -> list[ItemRecord]:
    """The records, refused where one request names an item twice."""
    ids = [r.item_id for r in records]
    if len(ids) != len(set(ids)):
        duplicated = sorted({i for i in ids if ids.count(i) > 1})
        raise ConfigError(f"items: item_id(s) {duplicated[:10]} appear more than once in one request.")
    return list(records)


def check_list_options(k: int, diversity: float, outside_share: float, min_categories: int) -> None:
    """The options of a recommendation list, each in its range (`ConfigError` naming the first that is not)."""
    check_k(k)
    if not 0.0 <= diversity <= 1.0:
        raise ConfigError(f"diversity must be in [0, 1]. Got {diversity!r} instead.")
    if not 0.0 <= outside_share <= 1.0:
        raise ConfigError(f"outside_share must be in [0, 1]. Got {outside_share!r} instead.")
    if not 0 <= min_categories <= k:
        raise ConfigError(f"min_categories must be in [0, k={k}]. Got {min_categories!r} instead.")


def _listed(problems: list[str]) -> str:
    more = len(problems) - MAX_PROBLEMS
    return "; ".join(problems[:MAX_PROBLEMS]) + (f"; and {more} more" if more > 0 else "")
