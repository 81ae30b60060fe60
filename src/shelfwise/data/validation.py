"""Row-level validation reports: every bad row is named with file, line, column and reason."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shelfwise.errors import ValidationError


@dataclass(frozen=True)
class RowError:
    """One problem with one row of one input file."""

    file: str
    line: int  # 1-based physical line for text files (the header is line 1); 1-based row for Parquet
    column: str | None
    reason: str
    unit: str = "line"

    def __str__(self) -> str:
        where = f"{self.file}, {self.unit} {self.line}"
        if self.column:
            where += f", column '{self.column}'"
        return f"{where}: {self.reason}"


@dataclass
class ValidationReport:
    """Every problem found while reading and validating input, plus the rows that were rejected."""

    errors: list[RowError] = field(default_factory=list)
    rejected: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    rows_read: int = 0
    rows_accepted: int = 0
    merged_duplicates: int = 0  # rows folded into a later row with the same id (an update, not an error)

    def add(
        self,
        file: str,
        line: int,
        column: str | None,
        reason: str,
        row: dict[str, Any] | None = None,
        unit: str = "line",
    ) -> None:
        self.errors.append(RowError(file, int(line), column, reason, unit))
        key = (file, int(line))
        if key not in self.rejected:
            self.rejected[key] = dict(row) if row is not None else {}

    def extend(self, other: ValidationReport) -> None:
        self.errors.extend(other.errors)
        for key, row in other.rejected.items():
            self.rejected.setdefault(key, row)
        self.rows_read += other.rows_read
        self.rows_accepted += other.rows_accepted
        self.merged_duplicates += other.merged_duplicates

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def rows_rejected(self) -> int:
        return len(self.rejected)

    def summary(self, limit: int = 20, *, quarantined: bool = False) -> str:
        """A readable report: the first `limit` problems and the totals (and, unless the bad rows
        were `quarantined` already, how to load the good ones)."""
        if self.ok:
            return f"{self.rows_read} rows read, no problems found."
        lines = [str(error) for error in sorted(self.errors, key=lambda e: (e.file, e.line))[:limit]]
        more = len(self.errors) - len(lines)
        if more > 0:
            lines.append(f"... and {more} more problem(s)")
        totals = f"{len(self.errors)} problem(s) in {self.rows_rejected} of {self.rows_read} rows"
        if quarantined:
            lines.append(f"{totals}; the good rows were loaded and the bad ones quarantined.")
        else:
            lines.append(
                f"{totals}; fix them, or pass --skip-invalid to load the good rows and quarantine the bad ones."
            )
        return "\n".join(lines)

    def raise_if_errors(self) -> None:
        if not self.ok:
            raise ValidationError("Input failed validation:\n" + self.summary(), report=self)

    def write_quarantine(self, path: str | os.PathLike[str]) -> Path:
        """Write each rejected row with all its reasons as one JSON object per line."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        reasons: dict[tuple[str, int], list[dict[str, Any]]] = {}
        units: dict[tuple[str, int], str] = {}
        for error in self.errors:
            reasons.setdefault((error.file, error.line), []).append({"column": error.column, "reason": error.reason})
            units.setdefault((error.file, error.line), error.unit)
        tmp = path.with_suffix(path.suffix + ".tmp")
        with open(tmp, "w", encoding="utf-8") as handle:
            for (file, line), row in sorted(self.rejected.items()):
                record = {
                    "file": file,
                    units.get((file, line), "line"): line,
                    "problems": reasons.get((file, line), []),
                    "row": row,
                }
                handle.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        os.replace(tmp, path)
        return path
