"""The one facade the service and the CLI call: a fitted model, the catalog's vectors and the store."""

from shelfwise.engine.engine import Engine, Recommendation

__all__ = ["Engine", "Recommendation"]
