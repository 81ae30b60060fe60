"""Scores over the whole catalog for a history: the model's where it knows the item, and for items
it does not know (added after training) their text score mapped by quantile onto the model's score
distribution over a sample of known items, so a new item that matches a shopper's history as well as
the model's best candidates do ranks among them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from shelfwise.engine.generation import Generation, map_by_quantile
from shelfwise.models.content import text_profile

#: How many candidates the model index returns per answer (before filters already applied inside).
RETRIEVE_DEPTH = 100


def catalog_scores(
    generation: Generation, positions: np.ndarray, n: int, text: TextVectors, popularity: np.ndarray
) -> np.ndarray:
    """Scores over the first `n` catalog positions after a history of catalog positions."""
    model_positions = generation.model_index_of(positions)
    known = model_positions[model_positions >= 0]
    placement = generation.placed
    if len(known) and placement is not None and generation.index is not None:
        query = generation.query_vector(known)  # inner products: placed items score alike
        scores = np.full(n, -np.inf)
        scores[generation.model_items] = generation.index.vectors @ query
        placed, placed_scores = placement.scores(query, n)
        scores[placed] = placed_scores
        return scores
    if len(known):
        model_scores = generation.model.score_histories([known])[0]
    else:  # no history the model knows: popularity over the model's items
        model_scores = np.log1p(popularity[generation.model_items])
    return with_cold(generation, model_scores, TextScorer(positions, text.vectors, popularity), text, n)


@dataclass(frozen=True)
class TextVectors:
    """The catalog's text vectors as a read took them, and their `VectorIndex.revision`."""

    vectors: np.ndarray
    revision: int = 0


class TextScorer:
    """Text scores after a history: half the cosine to the history's text profile (the one
    `models.content.text_profiles`, which the sequential model's text part reads too), half the best
    cosine to one of its last ten items (so a new twin of something just bought ranks high);
    popularity when there is no history."""

    def __init__(self, positions: np.ndarray, vectors: np.ndarray, popularity: np.ndarray) -> None:
        self.popularity = popularity
        self.empty = len(positions) == 0
        if not self.empty:  # the profile and the last ten items side by side: one matrix product
            profile = text_profile(positions, vectors)
            self.anchors = np.ascontiguousarray(np.column_stack([profile, vectors[positions[-10:]].T]), np.float32)

    def __call__(self, targets: np.ndarray, target_vectors: np.ndarray) -> np.ndarray:
        """Scores of the catalog positions `targets`, whose text vectors are `target_vectors`."""
        if self.empty:
            return np.log1p(self.popularity[targets])
        cosines = target_vectors @ self.anchors
        return 0.5 * cosines[:, 0] + 0.5 * cosines[:, 1:].max(axis=1)


def cold_vectors(vectors: np.ndarray, cold: np.ndarray) -> np.ndarray:
    """The text vectors of the cold positions: a view where they are one run (items added after
    training follow the trained ones in the catalog), a gathered copy otherwise."""
    if len(cold) and cold[-1] - cold[0] + 1 == len(cold):
        return vectors[cold[0] : cold[-1] + 1]
    return vectors[cold]


def similar_scores(generation: Generation, position: int, text: TextVectors, n: int) -> np.ndarray | None:
    """Scores over the first `n` catalog positions of how alike each item is to the one at
    `position`: the model's similarity where it knows the item and has one (items it does not know
    placed by text cosine, as in `with_cold`); None where it does not know it or has none."""
    model_index = generation.model_index_of(np.array([position]))[0]
    if model_index < 0:
        return None
    try:
        model_scores = generation.model.similarity_scores(np.array([model_index]))[0]
    except NotImplementedError:
        return None
    if not np.isfinite(model_scores).any() or np.ptp(model_scores) == 0:
        return None
    anchor = text.vectors[position]
    return with_cold(generation, model_scores, lambda _targets, matrix: matrix @ anchor, text, n)


def retrieve(
    generation: Generation, positions: np.ndarray, mask: np.ndarray, depth: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """The best `depth` allowed catalog positions through the model's vector index (None when
    the model has no index, or the history holds nothing the model knows). Items added after
    training join from their placement in the model's space (`Generation.place_cold`)."""
    if generation.index is None:
        return None
    model_positions = generation.model_index_of(positions)
    known = model_positions[model_positions >= 0]
    if len(known) == 0:
        return None
    query = generation.query_vector(known)
    model_items = generation.model_items
    ids, scores = generation.index.search(query, max(depth, RETRIEVE_DEPTH), generation.model_mask(mask))
    candidates, values = model_items[ids], scores.astype(np.float64)
    placement = generation.placed
    if placement is not None:
        cold, cold_scores = placement.search(query, mask, depth)
        candidates = np.concatenate([candidates, cold])
        values = np.concatenate([values, cold_scores])
    order = np.lexsort((candidates, -values))[:depth]
    return candidates[order], values[order]


def with_cold(
    generation: Generation,
    model_scores: np.ndarray,
    text_scores: Callable[[np.ndarray, np.ndarray], np.ndarray],
    text: TextVectors,
    n: int,
) -> np.ndarray:
    """Catalog-wide scores: the model's where it knows the item; for the others (`text_scores` of
    catalog positions and their text vectors), their text score mapped by quantile onto the
    distribution of model scores over a sample of known items."""
    scores = np.full(n, -np.inf)
    scores[generation.model_items] = model_scores
    cold = generation.cold_positions(n)
    if len(cold) == 0:
        return scores
    known = generation.model_items[generation.calibration_sample()]
    cold_text = text_scores(cold, cold_vectors(text.vectors, cold))
    reference_model = scores[known]
    finite = np.isfinite(reference_model)
    if not finite.any():
        scores[cold] = cold_text
        return scores
    reference = text_scores(known, generation.reference_vectors(text.vectors, text.revision))
    scores[cold] = map_by_quantile(cold_text, reference, reference_model[finite])
    return scores
