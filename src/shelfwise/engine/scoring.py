"""Scores over the whole catalog for a history: the model's where it knows the item, and for items
it does not know (added after training) their text score mapped by quantile onto the model's score
distribution over a sample of known items, so a new item that matches a shopper's history as well as
the model's best candidates do ranks among them."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from shelfwise.engine.generation import Generation, map_by_quantile
from shelfwise.models.content import text_profiles

#: How many candidates the model index returns per answer (before filters already applied inside).
RETRIEVE_DEPTH = 100


def catalog_scores(
    generation: Generation, positions: np.ndarray, n: int, vectors: np.ndarray, popularity: np.ndarray
) -> np.ndarray:
    """Scores over the first `n` catalog positions after a history of catalog positions."""
    model_positions = generation.model_index_of(positions)
    known = model_positions[model_positions >= 0]
    if len(known):
        model_scores = generation.model.score_histories([known])[0]
    else:  # no history the model knows: popularity over the model's items
        model_scores = np.log1p(popularity[generation.model_items])
    return with_cold(generation, model_scores, text_scorer(positions, vectors, popularity), n)


def text_scorer(
    positions: np.ndarray, vectors: np.ndarray, popularity: np.ndarray
) -> Callable[[np.ndarray], np.ndarray]:
    """A function of catalog positions: half the cosine to the history's text profile (the one
    `models.content.text_profiles`, which the sequential model's text part reads too), half the best
    cosine to one of its last ten items (so a new twin of something just bought ranks high);
    popularity when there is no history."""

    def text_scores(targets: np.ndarray) -> np.ndarray:
        if len(positions) == 0:
            return np.log1p(popularity[targets])
        profile = text_profiles([positions], vectors)[0]
        target_vectors = vectors[targets]
        closest = (target_vectors @ vectors[positions[-10:]].T).max(axis=1)
        return 0.5 * (target_vectors @ profile) + 0.5 * closest

    return text_scores


def similar_scores(generation: Generation, position: int, vectors: np.ndarray, n: int) -> np.ndarray | None:
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
    return with_cold(generation, model_scores, lambda targets: vectors[targets] @ vectors[position], n)


def retrieve(
    generation: Generation,
    positions: np.ndarray,
    mask: np.ndarray,
    depth: int,
    vectors: np.ndarray,
    popularity: np.ndarray,
) -> tuple[np.ndarray, np.ndarray] | None:
    """The best `depth` allowed catalog positions through the model's vector index (None when
    the model has no index, or the history holds nothing the model knows). Cold items join with
    their text score mapped onto the model's score distribution, as in `with_cold`."""
    if generation.index is None:
        return None
    model_positions = generation.model_index_of(positions)
    known = model_positions[model_positions >= 0]
    if len(known) == 0:
        return None
    query = generation.model.query_vectors([known])[0]
    model_items = generation.model_items
    ids, scores = generation.index.search(query, max(depth, RETRIEVE_DEPTH), mask[model_items])
    candidates, values = model_items[ids], scores.astype(np.float64)
    cold = generation.cold_positions(len(mask))
    cold = cold[mask[cold]]
    if len(cold):
        sample = generation.calibration_sample()
        text = text_scorer(positions, vectors, popularity)(np.concatenate([model_items[sample], cold]))
        mapped = map_by_quantile(text[len(sample) :], text[: len(sample)], generation.index.vectors[sample] @ query)
        candidates = np.concatenate([candidates, cold])
        values = np.concatenate([values, mapped])
    order = np.lexsort((candidates, -values))[:depth]
    return candidates[order], values[order]


def with_cold(
    generation: Generation, model_scores: np.ndarray, text_scores: Callable[[np.ndarray], np.ndarray], n: int
) -> np.ndarray:
    """Catalog-wide scores: the model's where it knows the item; for the others (`text_scores` of
    catalog positions), their text score mapped by quantile onto the distribution of model scores
    over a sample of known items."""
    scores = np.full(n, -np.inf)
    scores[generation.model_items] = model_scores
    cold = generation.cold_positions(n)
    if len(cold) == 0:
        return scores
    known = generation.model_items[generation.calibration_sample()]
    text = text_scores(np.concatenate([known, cold]))
    reference_model = scores[known][np.isfinite(scores[known])]
    if len(reference_model) == 0:
        scores[cold] = text[len(known) :]
        return scores
    scores[cold] = map_by_quantile(text[len(known) :], text[: len(known)], reference_model)
    return scores
