"""Cold items in the sequential model: an item no training history holds takes the blended score of
the warm items nearest to it in text, weighted by their cosine, times a factor, so it competes on the
same scale as the warm items; to that it adds its own text score (its cosine to the shopper's text
profile, z-scored like the blend's text part) times a weight. Behaviour reaches a cold item through
its neighbours, the language model through both. The neighbour count, the factor and the text weight
are chosen on the fit's holdout."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from shelfwise.ranking import ndcg_rows, topk

logger = logging.getLogger(__name__)

#: The neighbour counts and factors tried on the holdout (factor 0: cold items keep their own scores).
#: The setting chosen is the best for the held-out shoppers whose items are cold, among those that keep
#: the holdout NDCG within `COLD_TOLERANCE` of the best (overall NDCG alone would hardly count cold
#: items, a few percent of the targets).
COLD_NEIGHBOURS = (5, 20)
COLD_FACTORS = (1.0, 1.5, 2.0, 3.0)
#: The weights of a cold item's own text score tried on the holdout (with each count and factor).
COLD_TEXT_WEIGHTS = (0.0, 0.5, 1.0, 2.0, 4.0)
#: On the tuning splits (benchmarks/cold_policy.py) 0.5% kept Beauty's overall NDCG 0.9% higher and its
#: cold slice a third lower than 1% did; 2% and a text weight of 8 gained nothing more.
COLD_TOLERANCE = 0.01


@dataclass(frozen=True)
class ColdPolicy:
    """How cold items are scored: `factor` × their `neighbours` nearest warm items' weighted score,
    plus `offset` × the row's standard deviation (a prior that new items sell), plus `text` × their
    own z-scored text score. Factor 0: as is."""

    factor: float = 0.0
    neighbours: int = 0
    offset: float = 0.0
    text: float = 0.0

    @classmethod
    def of_state(cls, state: dict[str, np.ndarray]) -> ColdPolicy:
        """The policy a saved model holds (a model saved before the cold policy: no inheritance)."""
        return cls(
            float(state.get("cold_factor", 0.0)),
            int(state.get("cold_neighbour_count", 0)),
            float(state.get("cold_offset", 0.0)),
            float(state.get("cold_text", 0.0)),
        )

    def with_offset(self, offset: float) -> ColdPolicy:
        return ColdPolicy(self.factor, self.neighbours, offset, self.text)


@dataclass(frozen=True)
class ColdNeighbours:
    """The cold items, their nearest warm items in text and the weights (see `text_neighbours`)."""

    items: np.ndarray
    neighbours: np.ndarray
    weights: np.ndarray

    @classmethod
    def of(cls, vectors: np.ndarray, cold: np.ndarray, count: int) -> ColdNeighbours:
        return cls(*text_neighbours(vectors, cold, count))

    def inherit(self, scores: np.ndarray, policy: ColdPolicy, text: np.ndarray | None = None) -> None:
        """In place: the cold items' scores as `policy` says (nothing where its factor is 0). `text`:
        the rows' z-scored text scores over every item (needed where the policy's text weight is not 0)."""
        if policy.factor and len(self.items):
            inherit_cold(scores, self.items, self.neighbours, self.weights, policy.factor, policy.offset)
            if policy.text:
                if text is None:
                    raise ValueError("this cold policy adds the items' own text scores: pass them")
                scores[:, self.items] += np.float32(policy.text) * text[:, self.items]


def text_neighbours(vectors: np.ndarray, cold: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each cold item (bool mask `cold`): its `count` nearest warm items by text cosine and their
    weights (the cosines, negatives at 0, summing to 1). Returns (cold items, neighbours, weights)."""
    cold_items = np.flatnonzero(cold)
    warm = np.flatnonzero(~cold)
    count = min(count, len(warm))
    neighbours = np.zeros((len(cold_items), count), dtype=np.int64)
    weights = np.zeros((len(cold_items), count), dtype=np.float32)
    if not count:
        return cold_items, neighbours, weights
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    warm_unit = np.ascontiguousarray(unit[warm].T)
    for start in range(0, len(cold_items), 1024):
        chunk = slice(start, start + 1024)
        sims = unit[cold_items[chunk]] @ warm_unit
        top = np.argpartition(-sims, count - 1, axis=1)[:, :count]
        neighbours[chunk] = warm[top]
        weights[chunk] = np.maximum(np.take_along_axis(sims, top, axis=1), 0.0)
    weights /= np.maximum(weights.sum(axis=1, keepdims=True), 1e-12)
    return cold_items, neighbours, weights


def inherit_cold(
    scores: np.ndarray,
    cold_items: np.ndarray,
    neighbours: np.ndarray,
    weights: np.ndarray,
    factor: float,
    offset: float = 0.0,
) -> None:
    """In place: each cold item's score becomes `factor` × the weighted score of its warm neighbours,
    plus `offset` × the row's standard deviation (a prior that new items sell)."""
    spread = scores.std(axis=1, keepdims=True) if offset else None
    inherited = np.empty((len(scores), len(cold_items)), dtype=scores.dtype)
    for start in range(0, len(cold_items), 512):
        chunk = slice(start, start + 512)
        inherited[:, chunk] = np.einsum("ucm,cm->uc", scores[:, neighbours[chunk]], weights[chunk])
    inherited *= factor
    if spread is not None:
        inherited += offset * spread
    scores[:, cold_items] = inherited


@dataclass(frozen=True)
class ColdOption:
    """One cold-item policy tried on the holdout: its NDCG@10 over every held-out shopper and over
    those whose target is cold."""

    ndcg: float
    cold_ndcg: float
    policy: ColdPolicy


def cold_options(
    base: np.ndarray,
    seen: tuple[np.ndarray, np.ndarray],
    targets: list[np.ndarray],
    cold: np.ndarray,
    vectors: np.ndarray,
    offset: float,
    text: np.ndarray | None,
) -> tuple[list[ColdOption], np.ndarray]:
    """Every cold-item policy, scored on the holdout: `base` holds the blended scores of the held-out
    shoppers (rows), `seen` the (row, item) pairs their training histories hold, `cold` marks the
    items no training history holds, `text` the rows' z-scored text scores (None: cold items add no
    text score of their own). With a prior for new items (`offset` > 0) every option inherits.
    Returns the options and the rows whose target is cold (no options where none is)."""
    cold_rows = np.array([bool(cold[target].any()) for target in targets], dtype=bool)
    if not (cold.any() and cold_rows.any()):
        return [], cold_rows

    def option(scores: np.ndarray, policy: ColdPolicy) -> ColdOption:  # changes `scores`
        scores[seen] = -np.inf
        values = ndcg_rows(topk(scores, 10)[0], targets)
        return ColdOption(float(values.mean()), float(values[cold_rows].mean()), policy)

    options = [] if offset else [option(base.copy(), ColdPolicy())]
    for count in COLD_NEIGHBOURS:
        found = ColdNeighbours.of(vectors, cold, count)
        for factor in COLD_FACTORS:
            for weight in COLD_TEXT_WEIGHTS if text is not None else (0.0,):
                scores = base.copy()
                policy = ColdPolicy(factor, count, offset, weight)
                found.inherit(scores, policy, text)
                options.append(option(scores, policy))
    return options, cold_rows


def pick_cold_option(options: list[ColdOption], tolerance: float = COLD_TOLERANCE) -> ColdOption:
    """The option best on the cold slice among those whose overall NDCG is within `tolerance`
    (relative) of the best; ties go to the better overall NDCG, then to the earlier option."""
    floor = max(option.ndcg for option in options) * (1.0 - tolerance)
    eligible = [option for option in options if option.ndcg >= floor]
    return max(eligible, key=lambda option: (option.cold_ndcg, option.ndcg))


def choose_cold_policy(options: list[ColdOption], cold_rows: np.ndarray, offset: float) -> ColdPolicy:
    """The cold-item policy best on the holdout (`cold_options` scored them; see `pick_cold_option`).
    Without cold targets, no inheritance (or the defaults, with a prior for new items: `offset` > 0)."""
    if not options:
        return ColdPolicy(1.0, COLD_NEIGHBOURS[-1], offset) if offset else ColdPolicy()
    logger.debug("sequential cold options: %s", options)
    chosen = pick_cold_option(options)
    plain = options[0] if not offset else None
    policy = chosen.policy
    logger.info(
        "sequential cold items: %s text neighbours, factor %s, offset %s, own text weight %s (holdout "
        "ndcg@10 %.4f, on the %d shoppers with a cold item %.4f%s)",
        policy.neighbours,
        policy.factor,
        policy.offset,
        policy.text,
        chosen.ndcg,
        int(cold_rows.sum()),
        chosen.cold_ndcg,
        f"; without inheritance {plain.ndcg:.4f} and {plain.cold_ndcg:.4f}" if plain else "",
    )
    return policy
