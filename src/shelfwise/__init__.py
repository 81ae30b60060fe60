"""shelfwise: a recommendation engine for online shops."""

from shelfwise.data.dataset import Dataset
from shelfwise.errors import (
    ConfigError,
    DataFormatError,
    LeakageError,
    NotFittedError,
    ShelfwiseError,
    UnknownIdError,
    ValidationError,
)

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DataFormatError",
    "Dataset",
    "LeakageError",
    "NotFittedError",
    "ShelfwiseError",
    "UnknownIdError",
    "ValidationError",
    "__version__",
]
