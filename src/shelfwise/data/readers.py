"""Readers for CSV/TSV, Parquet and JSONL files, with a column mapping and row-level validation.

Each reader returns the accepted rows as a canonical frame plus a `ValidationReport` naming every
rejected row by file, line (or Parquet row) and column. Nothing is dropped without a report entry.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from shelfwise.data.cleaning import RETURN, clean_text_column, normalise_category
from shelfwise.data.files import LINE_COLUMN, detect_file_format, read_raw
from shelfwise.data.schema import (
    EVENT_TYPE_ALIASES,
    EVENT_TYPES,
    ITEM_COLUMNS,
    REQUIRED_EVENT_COLUMNS,
    REQUIRED_ITEM_COLUMNS,
)
from shelfwise.data.validation import ValidationReport
from shelfwise.errors import ConfigError, DataFormatError

_RETURN_TYPES = {"return": RETURN, "returned": RETURN, "refund": RETURN}
#: What ingest does with a return: take it out of the shopper's purchases, or refuse the row.
RETURN_POLICIES = ("net", "reject")

_TRUE = {"1", "true", "yes", "y", "t", "in_stock", "instock", "available"}
_FALSE = {"0", "false", "no", "n", "f", "out_of_stock", "outofstock", "unavailable"}


@dataclass
class ReadResult:
    """Accepted rows (canonical columns) and the report of what was rejected and why."""

    frame: pd.DataFrame
    report: ValidationReport


def _apply_mapping(
    frame: pd.DataFrame, columns: Mapping[str, str] | None, known: tuple[str, ...], path: Path
) -> pd.DataFrame:
    mapping = dict(columns or {})
    unknown = sorted(set(mapping) - set(known))
    if unknown:
        raise ConfigError(f"Column mapping names unknown field(s) {unknown}; valid fields are {list(known)}.")
    missing = sorted(source for source in mapping.values() if source not in frame.columns)
    if missing:
        raise DataFormatError(
            f"{path}: column(s) {missing} named in the column mapping are not in the file; "
            f"it has {[c for c in frame.columns if c != LINE_COLUMN]}."
        )
    renamed = frame.rename(columns={source: target for target, source in mapping.items()})
    return renamed


def _is_missing(values: pd.Series) -> np.ndarray:
    as_text = values.astype(str).str.strip()
    return (values.isna() | (as_text == "") | as_text.str.lower().isin(["nan", "none", "null"])).to_numpy()


def parse_timestamps(values: pd.Series) -> pd.Series:
    """Parse ISO-8601 strings, datetimes or unix times (seconds, or milliseconds when > 1e11) to UTC.

    Unparseable values become NaT; the caller reports them.
    """
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = pd.to_datetime(values, utc=True)
        return parsed
    result = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]")
    numeric = pd.to_numeric(values, errors="coerce")
    is_number = numeric.notna() & np.isfinite(numeric.astype(float))
    if is_number.any():
        numbers = numeric[is_number].astype(float)
        millis = numbers.abs() > 1e11
        seconds = numbers.where(~millis, numbers / 1000.0)
        in_range = seconds.abs() < 1e10
        converted = pd.to_datetime(seconds[in_range], unit="s", utc=True)
        result.loc[converted.index] = converted
    text = values[~is_number & values.notna()]
    if len(text):
        text = text.astype(str).str.strip()
        parsed = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
        retry = parsed.isna() & (text != "")
        if retry.any():
            parsed.loc[retry] = pd.to_datetime(text[retry], utc=True, errors="coerce", format="mixed")
        result.loc[parsed.index] = parsed
    return result


def _always(reason: str) -> Callable[[int], str]:
    """The same reason for every flagged row."""
    return lambda _position: reason


def _row_dicts(frame: pd.DataFrame, positions: np.ndarray) -> list[dict]:
    """The given rows as dicts of their file's columns (missing values as None), read in one go."""
    rows = frame.iloc[positions].drop(columns=[LINE_COLUMN], errors="ignore").to_dict("records")
    return [
        {k: (None if (v is None or (isinstance(v, float) and np.isnan(v))) else v) for k, v in row.items()}
        for row in rows
    ]


class _Checker:
    """Collects per-row problems for one frame and knows which rows are still good."""

    def __init__(self, frame: pd.DataFrame, path: Path, report: ValidationReport, unit: str) -> None:
        self.frame = frame
        self.path = path
        self.report = report
        self.unit = unit
        self.bad = np.zeros(len(frame), dtype=bool)
        self.lines = frame[LINE_COLUMN].to_numpy()

    def flag(self, mask: np.ndarray, column: str, reason_for: Callable[[int], str]) -> None:
        positions = np.flatnonzero(mask)
        for position, row in zip(positions, _row_dicts(self.frame, positions), strict=True):
            self.report.add(
                str(self.path), int(self.lines[position]), column, reason_for(int(position)), row, unit=self.unit
            )
        self.bad |= mask


def read_events(
    path: str | os.PathLike[str],
    *,
    format: str | None = None,
    columns: Mapping[str, str] | None = None,
    default_event_type: str = "purchase",
    returns: str = "net",
) -> ReadResult:
    """Read and validate an event log.

    Required columns: user_id, item_id, timestamp; event_type (default `default_event_type` when the
    file has no such column) and value are optional. `columns` maps our field names to the file's.

    For purchases and carts `value` is a quantity. A purchase with a negative quantity, or a row whose
    type is a return (``return``, ``refund``, ``returned``), is a return: with ``returns="net"`` it
    comes back as a `RETURN` row with the quantity returned as its value (`cleaning.net_returns`
    takes it out of the shopper's purchases); with ``returns="reject"`` it is a rejected row. A zero
    quantity, or a negative one on a cart, is a rejected row with its reason.
    """
    if returns not in RETURN_POLICIES:
        raise ConfigError(f"returns must be one of {list(RETURN_POLICIES)}; got {returns!r}.")
    path = Path(path)
    raw, report = read_raw(path, format)
    frame = _apply_mapping(raw, columns, ("user_id", "item_id", "event_type", "timestamp", "value"), path)
    missing = [c for c in REQUIRED_EVENT_COLUMNS if c not in frame.columns]
    if missing and len(frame):
        raise DataFormatError(
            f"{path}: required column(s) {missing} are missing; the file has "
            f"{[c for c in frame.columns if c != LINE_COLUMN]}. Map them with a column mapping "
            "(e.g. --map user_id=customer)."
        )
    default = EVENT_TYPE_ALIASES.get(default_event_type.strip().lower())
    if default is None:
        raise ConfigError(f"Unknown default event type {default_event_type!r}; valid types are {EVENT_TYPES}.")
    unit = "row" if detect_or(format, path) == "parquet" else "line"
    check = _Checker(frame, path, report, unit)
    if not len(frame):
        return ReadResult(_empty_events(), report)

    for column in ("user_id", "item_id"):
        check.flag(_is_missing(frame[column]), column, _always(f"missing {column}"))
    user_ids = _as_id(frame["user_id"])
    item_ids = _as_id(frame["item_id"])

    timestamps = parse_timestamps(frame["timestamp"])
    ts_missing = _is_missing(frame["timestamp"])
    check.flag(ts_missing, "timestamp", lambda _p: "missing timestamp")
    unparseable = timestamps.isna().to_numpy() & ~ts_missing
    raw_ts = frame["timestamp"].to_numpy()
    check.flag(
        unparseable,
        "timestamp",
        lambda p: f"unparseable time {raw_ts[p]!r} (expected ISO 8601 such as 2024-05-01T12:30:00Z, or unix seconds)",
    )

    if "event_type" in frame.columns:
        raw_types = frame["event_type"]
        normalised = raw_types.astype(str).str.strip().str.lower().map({**EVENT_TYPE_ALIASES, **_RETURN_TYPES})
        type_missing = _is_missing(raw_types)
        normalised = normalised.where(~type_missing, default)
        unknown = normalised.isna().to_numpy()
        raw_values = raw_types.to_numpy()
        check.flag(
            unknown,
            "event_type",
            lambda p: f"unknown event type {raw_values[p]!r} (expected one of {', '.join(EVENT_TYPES)})",
        )
        event_types = normalised
    else:
        event_types = pd.Series(default, index=frame.index)

    if "value" in frame.columns:
        value_missing = _is_missing(frame["value"])
        values = pd.to_numeric(frame["value"].where(~value_missing, None), errors="coerce")
        not_number = values.isna().to_numpy() & ~value_missing
        not_finite = ~not_number & ~value_missing & ~np.isfinite(values.to_numpy(dtype=float, na_value=0.0))
        raw_values = frame["value"].to_numpy()
        check.flag(not_number | not_finite, "value", lambda p: f"value {raw_values[p]!r} is not a finite number")
    else:
        values = pd.Series(np.nan, index=frame.index)
    event_types, values = _quantities(check, event_types, values, returns)

    good = ~check.bad
    events = pd.DataFrame(
        {
            "user_id": user_ids[good].to_numpy(dtype=object),
            "item_id": item_ids[good].to_numpy(dtype=object),
            "event_type": event_types[good].to_numpy(dtype=object),
            "timestamp": timestamps[good].to_numpy(),
            "value": values[good].to_numpy(dtype=float, na_value=np.nan),
        }
    )
    events["timestamp"] = pd.to_datetime(events["timestamp"], utc=True)
    report.rows_accepted += len(events)
    return ReadResult(events, report)


def _quantities(
    check: _Checker, event_types: pd.Series, values: pd.Series, returns: str
) -> tuple[pd.Series, pd.Series]:
    """Returns and impossible quantities: see `read_events`."""
    kinds = event_types.to_numpy(dtype=object)
    quantity = values.to_numpy(dtype=float, na_value=np.nan)
    purchase, cart = kinds == "purchase", kinds == "cart"
    with np.errstate(invalid="ignore"):
        negative, zero = quantity < 0, quantity == 0
    check.flag((purchase | cart) & zero, "value", _always("zero quantity: an order line of no units is not a purchase"))
    check.flag(
        cart & negative,
        "value",
        lambda p: f"negative quantity {quantity[p]:g} on a cart event (a removal from the cart is not an interest)",
    )
    is_return = (purchase & negative) | (kinds == RETURN)
    if returns == "reject":
        check.flag(
            is_return,
            "value" if "value" in check.frame.columns else "event_type",
            _always("a return (negative quantity or return type); refused because returns are rejected"),
        )
    kinds = np.where(is_return, RETURN, kinds)
    quantity = np.where(is_return, np.abs(quantity), quantity)
    return pd.Series(kinds, index=event_types.index), pd.Series(quantity, index=values.index)


def detect_or(format: str | None, path: Path) -> str:
    return (format or detect_file_format(path)).lower()


def _as_id(values: pd.Series) -> pd.Series:
    """External ids as clean strings; floats that hold integers (``17850.0``) lose the ``.0``."""

    def convert(value: object) -> object:
        if value is None:
            return None
        if isinstance(value, float):
            if np.isnan(value):
                return None
            if value.is_integer():
                return str(int(value))
        return str(value).strip()

    return values.map(convert)


def _empty_events() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": pd.Series([], dtype=object),
            "item_id": pd.Series([], dtype=object),
            "event_type": pd.Series([], dtype=object),
            "timestamp": pd.Series([], dtype="datetime64[ns, UTC]"),
            "value": pd.Series([], dtype=float),
        }
    )


def _parse_tags(value: object) -> list[str]:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    if isinstance(value, (list, tuple, np.ndarray)):
        return [str(tag).strip() for tag in value if str(tag).strip()]
    text = str(value).strip()
    if text.startswith("["):
        try:
            parsed = json.loads(text)
            if isinstance(parsed, list):
                return [str(tag).strip() for tag in parsed if str(tag).strip()]
        except json.JSONDecodeError:
            pass
    separator = "|" if "|" in text else ("," if "," in text else ";")
    return [tag.strip() for tag in text.split(separator) if tag.strip()]


def read_items(
    path: str | os.PathLike[str],
    *,
    format: str | None = None,
    columns: Mapping[str, str] | None = None,
) -> ReadResult:
    """Read and validate a catalog. Only item_id is required; see `shelfwise.data.schema.Item`."""
    path = Path(path)
    raw, report = read_raw(path, format)
    frame = _apply_mapping(raw, columns, ITEM_COLUMNS, path)
    missing = [c for c in REQUIRED_ITEM_COLUMNS if c not in frame.columns]
    if missing and len(frame):
        raise DataFormatError(
            f"{path}: required column 'item_id' is missing; the file has "
            f"{[c for c in frame.columns if c != LINE_COLUMN]}. Map it with --item-map item_id=sku."
        )
    unit = "row" if detect_or(format, path) == "parquet" else "line"
    check = _Checker(frame, path, report, unit)
    if not len(frame):
        return ReadResult(empty_items(), report)
    check.flag(_is_missing(frame["item_id"]), "item_id", lambda _p: "missing item_id")
    out = pd.DataFrame({"item_id": _as_id(frame["item_id"])})
    for column in ("title", "description", "brand"):
        out[column] = clean_text_column(frame[column]) if column in frame.columns else None
    if "category" in frame.columns:
        out["category"] = clean_text_column(frame["category"]).map(normalise_category)
    else:
        out["category"] = None
    if "price" in frame.columns:
        price_missing = _is_missing(frame["price"])
        prices = pd.to_numeric(frame["price"].where(~price_missing, None), errors="coerce")
        raw_prices = frame["price"].to_numpy()
        not_number = prices.isna().to_numpy() & ~price_missing
        check.flag(not_number, "price", lambda p: f"price {raw_prices[p]!r} is not a number")
        as_float = prices.to_numpy(dtype=float, na_value=np.nan)
        check.flag(
            ~np.isnan(as_float) & ~np.isfinite(as_float), "price", lambda p: f"price {raw_prices[p]!r} is not finite"
        )
        check.flag(
            np.nan_to_num(as_float, nan=0.0) < 0,
            "price",
            lambda p: f"negative price {as_float[p]:g} (prices must be >= 0)",
        )
        out["price"] = as_float
    else:
        out["price"] = np.nan
    out["tags"] = frame["tags"].map(_parse_tags) if "tags" in frame.columns else [[] for _ in range(len(frame))]
    if "in_stock" in frame.columns:
        stock_missing = _is_missing(frame["in_stock"])
        text = frame["in_stock"].astype(str).str.strip().str.lower()
        is_true = text.isin(_TRUE).to_numpy() | stock_missing
        is_false = text.isin(_FALSE).to_numpy()
        raw_stock = frame["in_stock"].to_numpy()
        check.flag(
            ~is_true & ~is_false,
            "in_stock",
            lambda p: f"in_stock {raw_stock[p]!r} is not a boolean (true/false, yes/no, 1/0)",
        )
        out["in_stock"] = is_true
    else:
        out["in_stock"] = True
    if "created_at" in frame.columns:
        created_missing = _is_missing(frame["created_at"])
        created = parse_timestamps(frame["created_at"].where(~created_missing, None))
        raw_created = frame["created_at"].to_numpy()
        check.flag(
            created.isna().to_numpy() & ~created_missing,
            "created_at",
            lambda p: f"unparseable time {raw_created[p]!r} (expected ISO 8601 or unix seconds)",
        )
        out["created_at"] = created
    else:
        out["created_at"] = pd.Series(pd.NaT, index=frame.index, dtype="datetime64[ns, UTC]")
    good = ~check.bad
    items = out.loc[good].reset_index(drop=True)
    duplicated = items["item_id"].duplicated(keep="last")
    if duplicated.any():
        # A later row for the same item is an update of it: keep the latest, count the rest.
        report.merged_duplicates += int(duplicated.sum())
        items = items.loc[~duplicated].reset_index(drop=True)
    report.rows_accepted += len(items)
    return ReadResult(items, report)


def empty_items() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "item_id": pd.Series([], dtype=object),
            "title": pd.Series([], dtype=object),
            "description": pd.Series([], dtype=object),
            "category": pd.Series([], dtype=object),
            "brand": pd.Series([], dtype=object),
            "price": pd.Series([], dtype=float),
            "tags": pd.Series([], dtype=object),
            "in_stock": pd.Series([], dtype=bool),
            "created_at": pd.Series([], dtype="datetime64[ns, UTC]"),
        }
    )
