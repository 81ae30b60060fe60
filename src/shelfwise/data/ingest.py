"""Ingest: read, validate, clean and save an event log (and catalog) as a `Dataset` folder."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from shelfwise.data.cleaning import drop_duplicate_events, k_core, merge_order_lines, net_returns
from shelfwise.data.dataset import Dataset
from shelfwise.data.readers import read_events, read_items
from shelfwise.data.validation import ValidationReport

logger = logging.getLogger(__name__)


@dataclass
class IngestResult:
    dataset: Dataset
    report: ValidationReport
    quarantine: Path | None = None
    counts: dict[str, int] = field(default_factory=dict)


def ingest(
    events_path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    items_path: str | os.PathLike[str] | None = None,
    format: str | None = None,
    items_format: str | None = None,
    columns: Mapping[str, str] | None = None,
    item_columns: Mapping[str, str] | None = None,
    default_event_type: str = "purchase",
    event_weights: Mapping[str, float] | None = None,
    skip_invalid: bool = False,
    quarantine: str | os.PathLike[str] | None = None,
    drop_duplicates: bool = True,
    min_user_items: int = 1,
    min_item_users: int = 1,
    append: bool = False,
    name: str | None = None,
    returns: str = "net",
) -> IngestResult:
    """Validate and load the files into the data set folder `out`.

    Without `skip_invalid`, any bad row raises `ValidationError` (with the full report) and `out` is
    left as it was. With it, bad rows go to the quarantine file (default ``<out>.quarantine.jsonl``)
    with their reasons and the good rows load. With `append`, the events and items already in `out`
    are kept and the new ones added.

    Orders: with `drop_duplicates`, rows identical in every column are dropped, and lines of one
    order that differ only in quantity are summed (`cleaning.merge_order_lines`). A return (negative
    quantity on a purchase, or a return row) takes its quantity back from the shopper's purchases
    (`cleaning.net_returns`), or with ``returns="reject"`` is a rejected row. `counts` says how many
    rows each step touched.
    """
    out = Path(out)
    events_result = read_events(
        events_path, format=format, columns=columns, default_event_type=default_event_type, returns=returns
    )
    report = events_result.report
    items_frame = None
    if items_path is not None:
        items_result = read_items(items_path, format=items_format, columns=item_columns)
        report.extend(items_result.report)
        items_frame = items_result.frame
    if not skip_invalid:
        report.raise_if_errors()
    events = events_result.frame
    counts = {
        "rows_read": report.rows_read,
        "rows_rejected": report.rows_rejected,
        "items_merged_duplicates": report.merged_duplicates,
    }
    if drop_duplicates:
        events, counts["duplicate_rows_dropped"] = drop_duplicate_events(events)
        events, counts["order_lines_summed"] = merge_order_lines(events)
    if append and (out / "dataset.json").is_file():
        previous = Dataset.load(out)
        old_events, old_items = previous.to_frames()
        counts["events_kept_from_before"] = len(old_events)
        events = pd.concat([old_events, events], ignore_index=True)
        items_frame = old_items if items_frame is None else pd.concat([old_items, items_frame], ignore_index=True)
        event_weights = {**previous.event_weights, **(event_weights or {})}
        if drop_duplicates:  # rows appended again are duplicates of what is kept
            events, again = drop_duplicate_events(events)
            counts["duplicate_rows_dropped"] += again
            events, summed = merge_order_lines(events)
            counts["order_lines_summed"] += summed
    events, returned = net_returns(events)
    if returned["returns"]:
        counts.update(returned)
    if min_user_items > 1 or min_item_users > 1:
        before = len(events)
        events = k_core(events, min_user_items=min_user_items, min_item_users=min_item_users)
        counts["k_core_events_dropped"] = before - len(events)
    dataset = Dataset.from_frames(
        events,
        items_frame,
        name=name or out.name,
        event_weights=event_weights,
        meta={"source_format": "shelfwise", "sources": [str(events_path)]},
    )
    quarantine_path = None
    if not report.ok:
        quarantine_path = Path(quarantine) if quarantine else out.with_name(out.name + ".quarantine.jsonl")
        report.write_quarantine(quarantine_path)
        logger.warning("%d rows rejected; see %s", report.rows_rejected, quarantine_path)
    dataset.save(out)
    counts.update(users=dataset.n_users, items=dataset.n_items, events=dataset.n_interactions)
    return IngestResult(dataset=dataset, report=report, quarantine=quarantine_path, counts=counts)
