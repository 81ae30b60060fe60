"""The one exception hierarchy of shelfwise.

Every error that shelfwise raises on purpose derives from `ShelfwiseError`, so callers (the CLI, the
HTTP service) can map the whole family to exit codes or status codes in one place.
"""

from __future__ import annotations


class ShelfwiseError(Exception):
    """Base class of every error shelfwise raises on purpose."""


class ConfigError(ShelfwiseError, ValueError):
    """A setting, parameter or option has a value that is not allowed."""


class DataFormatError(ShelfwiseError, ValueError):
    """A file or folder is not in a format shelfwise can read (wrong columns, unknown layout)."""


class DatasetNotFoundError(ShelfwiseError, FileNotFoundError):
    """A data set folder or file does not exist where it was looked for."""


class ValidationError(ShelfwiseError, ValueError):
    """Input rows failed validation. `report` (a `shelfwise.data.validation.ValidationReport`, which
    raises this error: it is not named here, so that this module imports nothing of shelfwise) holds
    every problem found, with file, line and column."""

    def __init__(self, message: str, report: object | None = None) -> None:
        super().__init__(message)
        self.report = report


class UnknownIdError(ShelfwiseError, KeyError):
    """An external user or item id is not known to the data set or model."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it readable
        return str(self.args[0]) if self.args else "unknown id"


class NotFittedError(ShelfwiseError, RuntimeError):
    """A model was used before `fit` (or `load`)."""


class LeakageError(ShelfwiseError, AssertionError):
    """An evaluation split would let a model see a test interaction during `fit`."""


class EmptyQueryError(ShelfwiseError, ValueError):
    """A search was asked with no words to search for."""


class WriterBusy(ShelfwiseError, RuntimeError):
    """A write asked not to wait found another writer holding a lock (one of this process, or another
    process's for longer than a moment); nothing was stored (the caller writes again where waiting is
    fine)."""
