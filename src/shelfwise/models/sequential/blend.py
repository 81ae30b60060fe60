"""The blend of the sequential model: the transformer beside EASE, the text profile, next-item
transitions and what sells now, each z-scored per shopper, in a weighted sum whose weights (and
EASE's regularisation and the trend's half-life) are chosen on the fit's holdout."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import astuple, dataclass, fields

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from shelfwise.models.content import text_profile_scores
from shelfwise.models.ease import ease_weights
from shelfwise.models.sequential.histories import Holdout, sequence_matrix
from shelfwise.ranking import mean_ndcg, topk

logger = logging.getLogger(__name__)

#: The blend's EASE part runs up to this many items. EASE inverts an items × items matrix, a cost
#: cubic in the catalog (about a minute per inversion at 12,000 items on 2 cores, and a fit makes
#: four); above it the blend goes on without it.
EASE_MAX_ITEMS = 12_000
#: EASE regularisations tried on the holdout.
EASE_REGULARIZATIONS = (50.0, 250.0, 1000.0)
#: The blend is chosen on at most 2,000 held-out shoppers, fewer where the catalog is large: at most
#: this many user × item scores per part (and never fewer than 500 shoppers).
BLEND_SCORE_BUDGET = 40_000_000
#: The parts of the blend, in the order of `BlendWeights`.
BLEND_PARTS = ("transformer", "ease", "text", "transitions", "trending")
#: What an item's vector may be made of (`item_inputs`): the shipped model, and its two ablations.
ITEM_INPUTS = ("text+ids", "ids", "text")
#: The blend's parts each `item_inputs` may use (`BLEND_PARTS` names).
ITEM_INPUT_PARTS = {
    "text+ids": BLEND_PARTS,
    "ids": ("transformer", "ease", "transitions", "trending"),
    "text": ("transformer", "text"),
}

#: (transformer, collaborative, text, transition) weights tried on the holdout first; the trending part
#: and finer weights are then found by coordinate ascent from the best of them (`ASCENT_VALUES`).
BLEND_GRID = tuple(
    (w_seq, w_cf, w_text, w_next)
    for w_seq in (0.0, 0.5, 1.0)
    for w_cf in (0.0, 0.5, 1.0, 2.0, 4.0)
    for w_text in (0.0, 0.1, 0.3, 0.6)
    for w_next in (0.0, 0.5, 1.0, 2.0)
    if w_seq or w_cf or w_next
)
#: Weights each part may take in the coordinate ascent of the blend, and its rounds.
ASCENT_VALUES = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
ASCENT_ROUNDS = 3
#: How many of the latest items the transition part reads, and their decay.
NEXT_STEPS = 3
NEXT_DECAY = 0.5
#: Half-lives (days) tried for the trending part: what the shop sold lately, each event's weight
#: halving every half-life before the latest event of the fitted data.
TREND_HALF_LIVES = (3.0, 7.0, 30.0)

#: Part scores of some shoppers (rows × items, or one row that broadcasts), z-scored; None: not used.
Parts = list[np.ndarray | None]


@dataclass(frozen=True)
class BlendWeights:
    """The weight of each part; 0 leaves a part out."""

    transformer: float = 1.0
    ease: float = 0.0
    text: float = 0.0
    transitions: float = 0.0
    trending: float = 0.0

    @classmethod
    def of(cls, values: Sequence[float]) -> BlendWeights:
        """From values in `BLEND_PARTS` order (models saved before the trending part have four)."""
        values = [float(v) for v in values]
        return cls(*values, *[0.0] * (len(BLEND_PARTS) - len(values)))

    def array(self) -> np.ndarray:
        return np.array(astuple(self), dtype=np.float64)

    def as_dict(self) -> dict[str, float]:
        return {field.name: getattr(self, field.name) for field in fields(self)}

    @property
    def transformer_only(self) -> bool:
        return not any(astuple(self)[1:])


def zscore(scores: np.ndarray) -> np.ndarray:
    """Each row minus its mean, over its standard deviation (1 where a row is constant)."""
    scores = np.asarray(scores, dtype=np.float32)
    mean = scores.mean(axis=1, keepdims=True)
    std = scores.std(axis=1, keepdims=True)
    std[std == 0] = 1.0
    return (scores - mean) / std


def trending_scores(items: np.ndarray, stamps: pd.Series, n_items: int, half_life: float) -> np.ndarray:
    """log(1 + time-decayed event count) per item: each event weighs 0.5 ** (age / half_life), its age
    in days counted back from the latest event. What is selling now, not what sold once."""
    if not len(items):
        return np.zeros(n_items, dtype=np.float32)
    age = (stamps.max() - stamps).dt.total_seconds().to_numpy() / 86400.0
    counts = np.bincount(items, weights=0.5 ** (age / half_life), minlength=n_items)
    return np.log1p(counts).astype(np.float32)


def popularity_scores(matrix: sp.csr_matrix) -> np.ndarray:
    """log(1 + how many histories hold the item), from a histories × items matrix: what has sold, at
    any time (for data without times too); the popularity prior (`prior`) adds it."""
    return np.log1p(np.bincount(matrix.indices, minlength=matrix.shape[1])).astype(np.float32)


def transition_matrix(sequences: list[np.ndarray], n_items: int) -> sp.csr_matrix:
    """Row-normalised counts of "item j came right after item i" (and, at half weight, two steps
    after) over the given histories: the first-order Markov chain of the shop's sequences."""
    rows, cols, vals = [], [], []
    for sequence in sequences:
        for gap, weight in ((1, 1.0), (2, 0.5)):
            if len(sequence) > gap:
                rows.append(sequence[:-gap])
                cols.append(sequence[gap:])
                vals.append(np.full(len(sequence) - gap, weight, dtype=np.float32))
    if not rows:
        return sp.csr_matrix((n_items, n_items), dtype=np.float32)
    matrix = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n_items, n_items)
    )
    matrix.sum_duplicates()
    matrix.setdiag(0)
    matrix.eliminate_zeros()
    totals = np.asarray(matrix.sum(axis=1)).ravel()
    totals[totals == 0] = 1.0
    return sp.csr_matrix(sp.diags(1.0 / totals) @ matrix, dtype=np.float32)


@dataclass
class BlendParts:
    """What the parts other than the transformer read, fitted on some histories: the item text
    vectors (for the text profile, `text_profile_scores`), the transition matrix, EASE's
    item-item weights (None: no EASE part), the trending scores (None: no trending part) and the
    popularity scores (for the popularity prior; None: a model saved without them)."""

    n_items: int
    text_vectors: np.ndarray
    transitions: sp.csr_matrix
    cf_weights: np.ndarray | None = None
    trending: np.ndarray | None = None
    popularity: np.ndarray | None = None

    @classmethod
    def fitted(
        cls,
        sequences: list[np.ndarray],
        events: pd.DataFrame,
        text_vectors: np.ndarray,
        weights: BlendWeights,
        cf_regularization: float,
        half_life: float,
    ) -> BlendParts:
        """The parts `weights` use, fitted on every history (`events`: the fitted interactions)."""
        n_items = len(text_vectors)
        matrix = sequence_matrix(sequences, n_items)
        parts = cls(n_items, text_vectors, transition_matrix(sequences, n_items))
        if weights.ease:
            parts.cf_weights = ease_weights(matrix, cf_regularization)
        if weights.trending:
            parts.trending = trending_scores(events["item"].to_numpy(), events["timestamp"], n_items, half_life)
        parts.popularity = popularity_scores(matrix)  # for the popularity prior (`popularity_prior`)
        return parts

    def scores(self, sequences: list[np.ndarray], transformer: np.ndarray, weights: BlendWeights | None) -> Parts:
        """Per-shopper z-scored part scores after each history, in `BLEND_PARTS` order: every part
        this object has where `weights` is None, else those with a weight."""
        use = (1.0,) * len(BLEND_PARTS) if weights is None else astuple(weights)
        parts: Parts = [transformer, None, None, None, None]
        if use[1] and self.cf_weights is not None:
            parts[1] = np.asarray(sequence_matrix(sequences, self.n_items) @ self.cf_weights)
        if use[2]:
            parts[2] = self.text_scores(sequences)
        if use[3]:
            parts[3] = self.next_scores(sequences)
        if use[4] and self.trending is not None:
            parts[4] = np.repeat(self.trending[None], len(sequences), axis=0)
        return [None if part is None else zscore(part) for part in parts]

    def prior(self, weight: float) -> np.ndarray:
        """`weight` × the z-scored popularity (one row): a prior that what many took sells."""
        return np.float32(weight) * self._zscored_popularity

    @functools.cached_property
    def _zscored_popularity(self) -> np.ndarray:  # once, not at every answer
        if self.popularity is None:
            raise ValueError("these blend parts were fitted without the items' popularity")
        return zscore(self.popularity[None])

    def text_scores(self, sequences: list[np.ndarray]) -> np.ndarray:
        """The text part: every item's cosine to each history's text profile, z-scored per history."""
        return zscore(text_profile_scores(sequences, self.text_vectors))

    def next_scores(self, sequences: list[np.ndarray]) -> np.ndarray:
        """Transition scores from the latest `NEXT_STEPS` items, the latest weighing most."""
        rows: list[int] = []
        cols: list[int] = []
        vals: list[float] = []
        for row, sequence in enumerate(sequences):
            recent = sequence[-NEXT_STEPS:][::-1]
            rows.extend([row] * len(recent))
            cols.extend(recent.tolist())
            vals.extend(NEXT_DECAY ** np.arange(len(recent)))
        latest = sp.csr_matrix((vals, (rows, cols)), shape=(len(sequences), self.n_items), dtype=np.float32)
        return (latest @ self.transitions).toarray()


def blended(weights: BlendWeights, parts: Parts, rows: int, n_items: int) -> np.ndarray:
    """The weighted sum of the parts (rows × items, float32)."""
    total = sum(w * part for w, part in zip(weights.array(), parts, strict=True) if w and part is not None)
    return np.array(np.broadcast_to(total, (rows, n_items)), dtype=np.float32)


@dataclass
class BlendChoice:
    """What the holdout chose, and the evidence: `scores` are the held-out shoppers' blended scores
    at the chosen weights (float64 where the search summed them), `text` their z-scored text part
    (None where the blend may not use one), `seen` their training items as (row, item) pairs, `cold`
    the items no training history holds."""

    weights: BlendWeights
    cf_regularization: float
    half_life: float
    holdout: Holdout
    scores: np.ndarray
    text: np.ndarray | None
    seen: tuple[np.ndarray, np.ndarray]
    cold: np.ndarray
    value: float
    grid_value: float


class _Judge:
    """Holdout NDCG@10 of blends of some part scores (the held-out shoppers' own items excluded)."""

    def __init__(
        self,
        rows: int,
        n_items: int,
        seen: tuple[np.ndarray, np.ndarray],
        targets: list[np.ndarray],
        deadline: float = np.inf,
    ):
        self.shape = (rows, n_items)
        self.seen = seen
        self.targets = targets
        self.deadline = deadline

    def late(self) -> bool:
        """Past the deadline: the search keeps what it has."""
        if time.perf_counter() <= self.deadline:
            return False
        if self.deadline != -np.inf:  # say it once
            logger.warning("sequential blend: the time budget stops the search of the blend's weights")
            self.deadline = -np.inf
        return True

    def total(self, weights: Sequence[float], parts: Parts) -> np.ndarray:
        scores = torch.zeros(self.shape)  # torch: one multithreaded pass per part
        for weight, part in zip(weights, parts, strict=True):
            if weight and part is not None:  # a part may be one row (trending): it broadcasts
                scores.add_(torch.from_numpy(part), alpha=float(weight))
        return scores.numpy()

    def __call__(self, scores: np.ndarray) -> float:  # changes `scores`
        scores[self.seen] = -np.inf
        return mean_ndcg(topk(scores, 10)[0], self.targets)

    def ascend(self, weights: list[float], value: float, parts: Parts) -> tuple[float, list[float]]:
        """Coordinate ascent over every part from `weights` (worth `value`)."""
        current = self.total(weights, parts)  # the blend at `weights`; a trial changes one part of it
        for _ in range(ASCENT_ROUNDS):
            moved = False
            for part, part_scores in enumerate(parts):
                if part_scores is None:
                    continue
                for candidate in ASCENT_VALUES:
                    if candidate == weights[part]:
                        continue
                    if self.late():
                        return value, weights
                    trial = [*weights[:part], candidate, *weights[part + 1 :]]
                    if not any(trial):
                        continue
                    result = self(current + np.float32(candidate - weights[part]) * part_scores)
                    if result > value + 1e-9:
                        current += np.float32(candidate - weights[part]) * part_scores
                        value, weights, moved = result, trial, True
            if not moved:
                break
        return value, weights


def _grid_search(
    judge: _Judge,
    part_scores: Callable[[np.ndarray | None], Parts],
    unused: list[int],
    truncated: sp.csr_matrix | None,
) -> tuple[tuple[float, tuple[float, ...], float], Parts]:
    """The best `BLEND_GRID` point for each EASE regularisation (`truncated`: the histories EASE is
    fitted on; None: no EASE part), as (value, weights, regularisation), and the part scores there.
    `part_scores` scores the parts with the given EASE weights."""
    best: tuple[float, tuple[float, ...], float] = (-1.0, (1.0, 0.0, 0.0, 0.0, 0.0), 0.0)
    chosen_parts: Parts = []
    for regularization in EASE_REGULARIZATIONS if truncated is not None else (0.0,):
        if chosen_parts and judge.late():
            break
        cf_weights = ease_weights(truncated, regularization) if truncated is not None else None
        scores = [None if i in unused else part for i, part in enumerate(part_scores(cf_weights))]
        for grid_weights in BLEND_GRID:
            if any(grid_weights[i] for i in unused if i < len(grid_weights)):
                continue
            if best[0] >= 0 and judge.late():
                break
            value = judge(judge.total((*grid_weights, 0.0), scores))
            if value > best[0]:
                best = (value, (*grid_weights, 0.0), regularization)
        if best[2] == regularization:
            chosen_parts = scores
    return best, chosen_parts


def choose_blend(
    holdout: Holdout,
    n_items: int,
    transformer: Callable[[list[np.ndarray]], np.ndarray],
    text_vectors: np.ndarray,
    *,
    seed: int,
    allowed: Sequence[str] = BLEND_PARTS,
    deadline: float = np.inf,
) -> BlendChoice:
    """Pick the part weights, EASE's regularisation and the trending half-life on (at most 2,000 of)
    the held-out shoppers: a grid over the first four parts for each regularisation, then coordinate
    ascent over all five from the best grid point, for each half-life. Above `EASE_MAX_ITEMS` the
    blend has no EASE part. `transformer` scores histories with the network of the holdout phase.
    `allowed` names the parts the blend may use (the others keep weight 0). Once the clock
    (`time.perf_counter`) passes `deadline`, the search tries no more weights and keeps the best so far
    (one grid point at least is tried)."""
    unused = [i for i, name in enumerate(BLEND_PARTS) if name not in allowed]
    holdout = holdout.sample(min(2000, max(500, BLEND_SCORE_BUDGET // n_items)), seed)
    truncated = sequence_matrix(holdout.train, n_items)
    parts_of = BlendParts(n_items, text_vectors, transition_matrix(holdout.train, n_items))
    inputs = [holdout.train[u] for u in holdout.users]
    seen_matrix = sequence_matrix(inputs, n_items)
    seen = (np.repeat(np.arange(len(inputs)), np.diff(seen_matrix.indptr)), seen_matrix.indices)
    judge = _Judge(len(inputs), n_items, seen, holdout.targets, deadline)
    transformer_scores = transformer(inputs)

    def part_scores(cf_weights: np.ndarray | None) -> Parts:
        parts_of.cf_weights = cf_weights
        return parts_of.scores(inputs, transformer_scores, None)

    with_ease = n_items <= EASE_MAX_ITEMS and "ease" in allowed
    best, chosen_parts = _grid_search(judge, part_scores, unused, truncated if with_ease else None)
    grid_best = best
    half_lives: tuple[float | None, ...] = (None,)
    if holdout.events is not None and len(holdout.events[0]) and "trending" in allowed:
        half_lives = TREND_HALF_LIVES
    chosen_half_life = None
    final_parts = chosen_parts
    for half_life in half_lives:
        parts = list(chosen_parts)
        if half_life is not None and holdout.events is not None:
            trend = trending_scores(holdout.events[0], holdout.events[1], n_items, half_life)
            parts[4] = zscore(trend[None])
        value, weights = judge.ascend(list(grid_best[1]), grid_best[0], parts)
        if value > best[0]:
            best = (value, tuple(weights), grid_best[2])
            chosen_half_life, final_parts = half_life, parts
    values = list(best[1])
    if not chosen_half_life:
        values[4] = 0.0
    weights_chosen = BlendWeights.of(values)
    logger.info(
        "sequential blend: weights %s %s, EASE regularisation %s, trending half-life %s days "
        "(holdout ndcg@10 %.4f; the grid alone %.4f)",
        BLEND_PARTS,
        best[1],
        best[2],
        float(chosen_half_life or 0.0) if values[4] else 0.0,
        best[0],
        grid_best[0],
    )
    array = weights_chosen.array()
    base = np.broadcast_to(sum(w * part for w, part in zip(array, final_parts, strict=True) if w), judge.shape)
    return BlendChoice(
        weights=weights_chosen,
        cf_regularization=best[2],
        half_life=float(chosen_half_life or 0.0) if values[4] else 0.0,
        holdout=holdout,
        scores=base,
        text=final_parts[2],
        seen=seen,
        cold=np.bincount(truncated.indices, minlength=n_items) == 0,
        value=best[0],
        grid_value=grid_best[0],
    )
