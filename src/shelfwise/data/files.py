"""Raw rows of a data file: CSV/TSV (optionally gzipped), JSONL or Parquet, each row with the line
(or Parquet row) it came from, and a report of lines that could not be read at all."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from shelfwise.data.validation import ValidationReport
from shelfwise.errors import DataFormatError, DatasetNotFoundError

FORMATS = ("csv", "tsv", "parquet", "jsonl")
#: The column that holds each row's line (or Parquet row) number.
LINE_COLUMN = "_line"


def detect_file_format(path: str | os.PathLike[str]) -> str:
    """The format of a single file from its name (`.csv`, `.tsv`, `.parquet`, `.jsonl`, optionally `.gz`)."""
    name = Path(path).name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    for suffix, fmt in (
        (".csv", "csv"),
        (".tsv", "tsv"),
        (".tab", "tsv"),
        (".parquet", "parquet"),
        (".pq", "parquet"),
        (".jsonl", "jsonl"),
        (".ndjson", "jsonl"),
        (".json", "jsonl"),
    ):
        if name.endswith(suffix):
            return fmt
    raise DataFormatError(f"Cannot tell the format of {path} from its name; pass --format with one of {FORMATS}.")


def _open_binary(path: Path) -> io.BufferedIOBase:
    if path.suffix == ".gz":
        return gzip.open(path, "rb")
    return open(path, "rb")


def _decoded_lines(path: Path, report: ValidationReport) -> Iterator[tuple[int, str]]:
    """Yield (line number, text) for each physical line; invalid UTF-8 lines go to the report."""
    with _open_binary(path) as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                report.rows_read += 1
                report.add(
                    str(path),
                    number,
                    None,
                    f"invalid UTF-8 (byte 0x{raw[exc.start]:02x} at position {exc.start})",
                    {"raw": raw.decode("utf-8", errors="replace").rstrip("\r\n")},
                )
                continue
            if number == 1 and text.startswith("\ufeff"):
                text = text[1:]
            yield number, text


def _read_delimited(path: Path, delimiter: str, report: ValidationReport) -> pd.DataFrame:
    lines = _decoded_lines(path, report)
    numbers: list[int] = []

    def feed() -> Iterator[str]:
        for number, text in lines:
            numbers.append(number)
            yield text

    reader = csv.reader(feed(), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise DataFormatError(f"{path} is empty: expected a header line with column names.") from None
    header = [name.strip() for name in header]
    if len(set(header)) != len(header):
        raise DataFormatError(f"{path}: line 1 (header) repeats a column name: {header}.")
    rows: list[list[str]] = []
    row_lines: list[int] = []
    while True:
        consumed = len(numbers)
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise DataFormatError(f"{path}: line {numbers[-1]}: cannot parse: {exc}") from None
        first_line = numbers[consumed] if consumed < len(numbers) else numbers[-1]
        if not record or all(not field.strip() for field in record):
            continue  # blank line
        if len(record) != len(header):
            report.rows_read += 1
            report.add(
                str(path),
                first_line,
                None,
                f"wrong column count: expected {len(header)} ({delimiter!r}-separated), got {len(record)}"
                + (" (truncated line?)" if len(record) < len(header) else ""),
                {"raw": delimiter.join(record)},
            )
            continue
        rows.append(record)
        row_lines.append(first_line)
    frame = pd.DataFrame(rows, columns=header, dtype=object)
    frame[LINE_COLUMN] = np.asarray(row_lines, dtype=np.int64)
    return frame


def _read_jsonl(path: Path, report: ValidationReport) -> pd.DataFrame:
    records: list[dict] = []
    line_numbers: list[int] = []
    for number, text in _decoded_lines(path, report):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            report.rows_read += 1
            report.add(
                str(path), number, None, f"not valid JSON: {exc.msg} at column {exc.colno}", {"raw": text.rstrip()}
            )
            continue
        if not isinstance(record, dict):
            report.rows_read += 1
            report.add(
                str(path), number, None, f"expected a JSON object, got {type(record).__name__}", {"raw": text.rstrip()}
            )
            continue
        records.append(record)
        line_numbers.append(number)
    frame = pd.DataFrame.from_records(records) if records else pd.DataFrame()
    frame = frame.astype(object)
    frame[LINE_COLUMN] = np.asarray(line_numbers, dtype=np.int64)
    return frame


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several unrelated types for corrupt files
        raise DataFormatError(f"{path} is not a readable Parquet file: {exc}") from None
    frame = table.to_pandas()
    frame[LINE_COLUMN] = np.arange(1, len(frame) + 1, dtype=np.int64)
    return frame


def read_raw(path: str | os.PathLike[str], format: str | None = None) -> tuple[pd.DataFrame, ValidationReport]:
    """Read a file into a frame of its own columns plus `_line`; undecodable lines go to the report."""
    path = Path(path)
    if not path.is_file():
        raise DatasetNotFoundError(f"No such file: {path}")
    fmt = (format or detect_file_format(path)).lower()
    if fmt not in FORMATS:
        raise DataFormatError(f"Unknown format {format!r}; valid formats are {FORMATS}.")
    report = ValidationReport()
    if fmt == "csv":
        frame = _read_delimited(path, ",", report)
    elif fmt == "tsv":
        frame = _read_delimited(path, "\t", report)
    elif fmt == "jsonl":
        frame = _read_jsonl(path, report)
    else:
        frame = _read_parquet(path)
    report.rows_read += len(frame)
    return frame, report
