"""Top-K over item vectors (exact or faiss ANN), candidate filters, diversity re-ranking, reasons."""

from shelfwise.retrieval.explain import Reason, explain
from shelfwise.retrieval.filters import Filters
from shelfwise.retrieval.index import VectorIndex
from shelfwise.retrieval.rerank import cross_category, dominant_categories, mmr

__all__ = ["Filters", "Reason", "VectorIndex", "cross_category", "dominant_categories", "explain", "mmr"]
