"""Items the model was not trained on (added to the catalog after it), placed in the model's vector
space once, when they arrive: the model's own vector for their text where it has a text side
(`Recommender.text_item_vectors`: the sequential model's projected text, the content model's text
vector), plus what behaviour taught it about their nearest trained items in text.
An answer then scores them with one small product beside the model's index, instead of scoring
their text against the shopper's history on every request."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shelfwise.models import Recommender
from shelfwise.ranking import masked_topk
from shelfwise.retrieval import VectorIndex

#: Trained items (nearest in text) whose learned vectors a new item inherits, and the temperature of
#: the softmax over their cosines that weighs them (low: a near-twin outweighs the rest).
PLACEMENT_NEIGHBOURS = 20
PLACEMENT_TEMPERATURE = 0.02


@dataclass(frozen=True)
class ColdPlacement:
    """Catalog positions (ascending) of items the model does not know, and their model vectors."""

    positions: np.ndarray
    vectors: np.ndarray

    @classmethod
    def empty(cls, dim: int) -> ColdPlacement:
        return cls(np.zeros(0, dtype=np.int64), np.zeros((0, dim), dtype=np.float32))

    def with_items(self, positions: np.ndarray, vectors: np.ndarray) -> ColdPlacement:
        """A new placement with `positions` added or, where placed already, re-placed."""
        old = np.isin(self.positions, positions)
        merged = np.concatenate([self.positions[~old], positions])
        order = np.argsort(merged, kind="stable")
        stacked = np.concatenate([self.vectors[~old], vectors.astype(np.float32)])
        return ColdPlacement(merged[order], np.ascontiguousarray(stacked[order]))

    def scores(self, query: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The placed positions below `n` (a reader's catalog length) and their scores for `query`."""
        inside = int(np.searchsorted(self.positions, n))
        return self.positions[:inside], self.vectors[:inside] @ query

    def search(self, query: np.ndarray, mask: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray]:
        """The best `depth` placed positions that `mask` (over the catalog) allows, and their scores."""
        positions, scores = self.scores(query, len(mask))
        if len(positions) == 0:
            return positions, scores.astype(np.float64)
        ids, best = masked_topk(scores, mask[positions], depth)
        return positions[ids], best.astype(np.float64)


def place_items(
    model: Recommender,
    model_vectors: np.ndarray,
    positions: np.ndarray,
    catalog_to_model: np.ndarray,
    text: VectorIndex,
) -> np.ndarray:
    """Model vectors for the catalog `positions` the model does not know: the model's vector for
    their text alone (`Recommender.text_item_vectors`; zero for a model without a text side) plus
    what behaviour added to the vectors of their `PLACEMENT_NEIGHBOURS` nearest trained items in
    `text` (the catalog's text index), weighted by a softmax of their cosines at
    `PLACEMENT_TEMPERATURE`, so a new twin of an item scores as that item does."""
    vectors = text.vectors
    own = model.text_item_vectors(vectors[positions])
    out = np.zeros((len(positions), model_vectors.shape[1]), dtype=np.float32) if own is None else own.copy()
    trained = np.zeros(len(text), dtype=bool)
    known = min(len(catalog_to_model), len(text))
    trained[:known] = catalog_to_model[:known] >= 0
    for row, position in enumerate(positions):
        ids, cosines = text.search(vectors[position], PLACEMENT_NEIGHBOURS, trained)
        if len(ids) == 0:
            continue
        weights = np.exp((cosines - cosines.max()) / PLACEMENT_TEMPERATURE)
        learned = model_vectors[catalog_to_model[ids]]
        if own is not None:  # only the part behaviour added to the neighbours' vectors
            learned = learned - model.text_item_vectors(vectors[ids])
        out[row] += (weights / weights.sum()) @ learned
    return out
