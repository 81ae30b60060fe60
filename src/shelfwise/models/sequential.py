"""The flagship: a language-model-informed sequential recommender (SASRec-style, torch).

Items are a learned projection of their text vector plus an ID embedding trained with ID dropout,
so an item without interactions is represented from its text alone, in the same space. A shopper is
a causal transformer over their last `max_len` items; the hidden state at the last position scores
every item. A new event is one more position in the input: recommendations change with no refit.

The transformer is one part of a blend, because measurements said so: on the tuning splits EASE,
next-item transitions and what sells now (time-decayed sales) each beat it on some data set, and a
weighted sum of z-scored parts beats every part. The weights, EASE's regularisation and the trend's
half-life are chosen on held-out items of the training data; a part the holdout does not want gets
weight 0. Every part reads the shopper's current history, so a new event still changes the answer at
once. Items no history holds (cold) inherit the blended score of their nearest items in text.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable
from typing import ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from rich.progress import Progress
from torch import nn

from shelfwise.data.dataset import Dataset
from shelfwise.errors import ConfigError
from shelfwise.models.base import Recommender, register, topk
from shelfwise.models.content import profile_vectors, recency_weights
from shelfwise.models.ease import ease_weights
from shelfwise.text.encoder import DEFAULT_ENCODER, create_encoder
from shelfwise.text.item_text import DEFAULT_TEMPLATE, ItemTextTemplate
from shelfwise.text.pipeline import encode_items

logger = logging.getLogger(__name__)
#: The blend's EASE part runs up to this many items. EASE inverts an items × items matrix, a cost
#: cubic in the catalog (about a minute per inversion at 12,000 items on 2 cores, and a fit makes
#: four); above it the blend goes on without it.
EASE_MAX_ITEMS = 12_000
#: The blend runs up to this many items; above it the transformer alone scores. The blend is chosen
#: on dense held-out user × item scores, and serving computes the text profile over every item. On
#: synthetic shops of `benchmarks/scale.py`'s generator (one training epoch per phase, 2 cores):
#: 30,000 items and 300,000 events, the blend chosen in 59 s on 1,333 held-out shoppers, peak memory
#: 2.9 GB, a recommendation 13 ms; 50,000 items and 500,000 events, 66 s on 800 shoppers, 3.5 GB, 16 ms.
BLEND_MAX_ITEMS = 50_000
#: The blend is chosen on at most 2,000 held-out shoppers, fewer where the catalog is large: at most
#: this many user × item scores per part (and never fewer than 500 shoppers).
BLEND_SCORE_BUDGET = 40_000_000
#: ``negatives=0`` means a full softmax up to this many items; above it a step would score every
#: item at every position (items × positions), so `SCALE_NEGATIVES` sampled negatives are used.
#: On MovieLens-latest (9,066 items) the sampled step takes 6 to 7 s an epoch against 10 to 11 s and
#: early-stops inside the budget; on its tuning split it scored ndcg@10 0.0872 and 0.0853 in two runs
#: against 0.0861 (the same, within noise), and 0.0837 against 0.0814 on its test split.
FULL_SOFTMAX_MAX_ITEMS = 5_000
SCALE_NEGATIVES = 2048
#: Early stopping scores its held-out shoppers against every item: at most this many user × item
#: scores per check (and never fewer than 2,000 shoppers), a sample of them when there are more.
HOLDOUT_SCORE_BUDGET = 1_000_000_000
#: The parts of the blend, in the order of `weights_`.
BLEND_PARTS = ("transformer", "ease", "text", "transitions", "trending")
#: (transformer, collaborative, text, transition) weights tried on the holdout first; the trending part
#: and finer weights are then found by coordinate ascent from the best of them (`_ASCENT_VALUES`).
_BLEND_GRID = tuple(
    (w_seq, w_cf, w_text, w_next)
    for w_seq in (0.0, 0.5, 1.0)
    for w_cf in (0.0, 0.5, 1.0, 2.0, 4.0)
    for w_text in (0.0, 0.1, 0.3, 0.6)
    for w_next in (0.0, 0.5, 1.0, 2.0)
    if w_seq or w_cf or w_next
)
#: How many of the latest items the transition component reads, and their decay.
_NEXT_STEPS = 3
_NEXT_DECAY = 0.5
#: Half-lives (days) tried for the trending part: what the shop sold lately, each event's weight halving
#: every half-life before the latest event of the fitted data.
TREND_HALF_LIVES = (3.0, 7.0, 30.0)
#: Weights each part may take in the coordinate ascent of the blend.
_ASCENT_VALUES = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
_ASCENT_ROUNDS = 3


#: A cold item (no interactions to learn from) takes the blended score of the warm items nearest to it
#: in text, weighted by their cosine, times a factor: it competes on the same scale as the warm items.
#: The neighbour count and the factor are chosen on the holdout (factor 0: cold items keep their own
#: scores): the setting best for the held-out shoppers whose items are cold, among those that keep the
#: holdout NDCG within `COLD_TOLERANCE` of the best (overall NDCG alone would hardly count cold items,
#: a few percent of the targets).
COLD_NEIGHBOURS = (5, 20)
COLD_FACTORS = (1.0, 1.5, 2.0, 3.0)
COLD_TOLERANCE = 0.01


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
    plus `offset` × the row's standard deviation (a prior that new items sell: see `cold_offset`)."""
    spread = scores.std(axis=1, keepdims=True) if offset else None
    inherited = np.empty((len(scores), len(cold_items)), dtype=scores.dtype)
    for start in range(0, len(cold_items), 512):
        chunk = slice(start, start + 512)
        inherited[:, chunk] = np.einsum("ucm,cm->uc", scores[:, neighbours[chunk]], weights[chunk])
    inherited *= factor
    if spread is not None:
        inherited += offset * spread
    scores[:, cold_items] = inherited


def trending_scores(items: np.ndarray, stamps: pd.Series, n_items: int, half_life: float) -> np.ndarray:
    """log(1 + time-decayed event count) per item: each event weighs 0.5 ** (age / half_life), its age
    in days counted back from the latest event. What is selling now, not what sold once."""
    if not len(items):
        return np.zeros(n_items, dtype=np.float32)
    age = (stamps.max() - stamps).dt.total_seconds().to_numpy() / 86400.0
    counts = np.bincount(items, weights=0.5 ** (age / half_life), minlength=n_items)
    return np.log1p(counts).astype(np.float32)


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


def _ndcg_rows(ids: np.ndarray, targets: list[np.ndarray]) -> np.ndarray:
    """NDCG of each row's held-out items (models may not import `evaluation`, which imports models)."""
    if len(ids) != len(targets):
        raise ValueError(f"{len(ids)} rows of ids but {len(targets)} target sets")
    depth = ids.shape[1]
    discounts = 1.0 / np.log2(np.arange(2, depth + 2))
    lengths = np.array([len(target) for target in targets], dtype=np.int64)
    # one membership test for all rows: (row, item) pairs as int64 keys; -1 (no item) matches nothing
    stride = np.int64(2**32)
    wanted = np.repeat(np.arange(len(targets), dtype=np.int64), lengths) * stride
    if lengths.sum():
        wanted += np.concatenate([np.asarray(target, dtype=np.int64) for target in targets]) + 1
    found = np.arange(len(ids), dtype=np.int64)[:, None] * stride + ids.astype(np.int64) + 1
    dcg = np.isin(found, wanted) @ discounts
    ideal = np.concatenate([[0.0], np.cumsum(discounts)])[np.minimum(lengths, depth)]
    return np.divide(dcg, ideal, out=np.zeros(len(ids)), where=ideal > 0)


def _holdout_ndcg(ids: np.ndarray, targets: list[np.ndarray]) -> float:
    """Mean NDCG of held-out items."""
    return float(_ndcg_rows(ids, targets).mean()) if len(ids) else 0.0


@contextlib.contextmanager
def _deterministic():
    """Torch's deterministic kernels while training, so that a seed repeats a fit exactly: with several
    threads, some CPU backward kernels (the gradient of an index into the item table) otherwise sum in
    a different order each run. Warn-only: an op without a deterministic kernel still runs."""
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


def _zscore(scores: np.ndarray) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float32)
    mean = scores.mean(axis=1, keepdims=True)
    std = scores.std(axis=1, keepdims=True)
    std[std == 0] = 1.0
    return (scores - mean) / std


class _TrainStep(nn.Module):
    """One training forward as a module (the item table with ID dropout, then the transformer), so
    DistributedDataParallel sees every parameter used inside its forward."""

    text: torch.Tensor  # a buffer: moves with the module, never trained

    def __init__(self, network: _Network, text: torch.Tensor) -> None:
        super().__init__()
        self.network = network
        self.register_buffer("text", text, persistent=False)

    def forward(
        self, inputs: torch.Tensor, keep: torch.Tensor, rows: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if rows is None:
            table = self.network.item_table(self.text, keep)
        else:
            table = self.network.item_rows(self.text, rows, keep)
        return self.network(inputs, table), table


class _Network(nn.Module):
    def __init__(
        self, n_items: int, text_dim: int, dim: int, layers: int, heads: int, max_len: int, dropout: float
    ) -> None:
        super().__init__()
        self.text_projection = nn.Linear(text_dim, dim, bias=False)
        self.item_ids = nn.Embedding(n_items + 1, dim, padding_idx=n_items)  # last row: padding
        nn.init.zeros_(self.item_ids.weight)
        self.positions = nn.Embedding(max_len, dim)
        nn.init.normal_(self.positions.weight, std=0.02)
        layer = nn.TransformerEncoderLayer(
            dim, heads, dim_feedforward=2 * dim, dropout=dropout, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        self.max_len = max_len

    def item_table(self, text: torch.Tensor, id_keep: torch.Tensor | None = None) -> torch.Tensor:
        """Every item's vector: projected text plus ID embedding (dropped where `id_keep` is 0)."""
        ids = self.item_ids.weight[:-1]
        if id_keep is not None:
            ids = ids * id_keep[:, None]
        return self.text_projection(text) + ids

    def item_rows(
        self, text: torch.Tensor, rows: torch.Tensor, keep: torch.Tensor, *, sparse: bool = False
    ) -> torch.Tensor:
        """The vectors of the items `rows` only (as `item_table` gives them, `keep` per row): a step
        of sampled softmax touches these, so its cost does not grow with the catalog. `sparse` makes
        the ID embedding's gradient sparse (for `torch.optim.SparseAdam`)."""
        ids = nn.functional.embedding(rows, self.item_ids.weight, sparse=sparse)
        return self.text_projection(text[rows]) + ids * keep[:, None]

    def forward(self, sequences: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """Hidden state at every position of left-padded sequences (padding index = len(table)).
        Padding becomes a zero vector by masking, not by appending a zero row: that copied the whole
        table on every call (184 ms per answer at 1M items)."""
        pad = table.shape[0]
        embeddings = table[sequences.clamp(max=pad - 1)] * (sequences != pad).unsqueeze(-1)
        return self.run(embeddings)

    def run(self, embeddings: torch.Tensor) -> torch.Tensor:
        """The transformer over input item vectors (batch × length × dim); zero vectors are padding."""
        hidden = embeddings * math.sqrt(embeddings.shape[-1])
        length = embeddings.shape[1]
        hidden = hidden + self.positions.weight[self.max_len - length :][None]
        hidden = self.dropout(hidden)
        causal = torch.triu(torch.full((length, length), float("-inf")), diagonal=1)
        # no key-padding mask: with left padding a fully masked row would give NaN; pads are zero vectors
        out = self.encoder(hidden, mask=causal, is_causal=True)
        return self.norm(out)


def sampled_logits(
    network: _Network,
    text: torch.Tensor,
    batch: torch.Tensor,
    picks: torch.Tensor,
    log_q: torch.Tensor,
    *,
    id_dropout: float,
    sparse: bool,
    step: nn.Module | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and labels of one sampled-softmax step over `batch` (windows of item indices, left-padded
    with the padding index) against its targets and the negatives `picks`, with the popularity
    correction `log_q`. Only the vectors of the items the step uses are computed (see `item_rows`);
    `step` is the data-parallel `_TrainStep` where there is one."""
    pad = network.item_ids.num_embeddings - 1
    inputs, targets = batch[:, :-1], batch[:, 1:]
    mask = (targets != pad) & (inputs != pad)
    rows = torch.unique(torch.cat([batch.flatten(), picks]))
    rows = rows[rows != pad]
    keep = (torch.rand(len(rows)) >= id_dropout).float()
    local = torch.searchsorted(rows, batch)  # the padding index maps to len(rows): the zero row
    if step is None:
        table = network.item_rows(text, rows, keep, sparse=sparse)
        hidden = network(local[:, :-1], table)
    else:
        hidden, table = step(local[:, :-1], keep, rows)
    hidden, targets = hidden[mask], targets[mask]
    candidates = torch.unique(torch.cat([targets, picks]))
    logits = hidden @ table[torch.searchsorted(rows, candidates)].T - log_q[candidates]
    return logits, torch.searchsorted(candidates, targets)


@register
class SequentialRecommender(Recommender):
    """Causal transformer over a shopper's recent items, with text-informed item vectors.

    Args:
        encoder: text encoder spec (see `shelfwise.text.create_encoder`).
        dim, layers, heads, max_len, dropout: the transformer.
        id_dropout: probability of dropping an item's ID embedding in a training step, so the text
            projection alone must carry it (as it must for a cold item).
        epochs: the most epochs; early stopping on the last item of each history picks fewer.
        negatives: 0 for a full softmax over all items (up to `FULL_SOFTMAX_MAX_ITEMS` items; above
            that, `SCALE_NEGATIVES`); otherwise sampled softmax over in-batch targets and this many
            uniform negatives, with a log-frequency (popularity) correction. A sampled step computes
            only the item vectors it uses, and the ID embedding learns with sparse (lazy) Adam, so
            its cost does not grow with the catalog.
        max_seconds: wall-clock budget for the whole fit (the default keeps a fit under 10 minutes on 2
            cores with room for one more epoch; on MovieLens-latest, 9,066 items and 100,000 ratings,
            each training phase runs about 20 epochs within it, and a slower machine runs fewer).
        blend: join the transformer with a collaborative component (EASE over the history, up to
            `EASE_MAX_ITEMS` items), a text component (cosine to the recency-weighted text profile),
            next-item transitions and, where events have times, a trending component (time-decayed
            sales); their weights, EASE's regularisation, the trend's half-life and the cold items'
            inheritance are chosen on held-out items of the training data. Up to `BLEND_MAX_ITEMS`
            items; above it the transformer alone scores.
        holdout: which training items early stopping and blending are judged on: ``last`` (each
            history's last item, as in leave-last-out) or ``temporal`` (items first taken in the last
            10% of the time span, as in a temporal split).
        cold_offset: a prior that new items sell, for shops where new arrivals do (chosen on the
            tuning split, not inside the fit): cold items always inherit their text neighbours' score
            and score this many of the shopper's score standard deviations above it. 0: no prior, and
            the holdout decides whether cold items inherit at all. It needs the blend (`blend`, at
            most `BLEND_MAX_ITEMS` items).
        seed: the same seed and data give the same locally trained model, bit for bit (training
            runs torch's deterministic kernels; repeats of data-parallel training on Ray are not tested).
    """

    name = "sequential"
    #: EASE's item-item weights where the blend uses them.
    cf_weights_: np.ndarray | None
    #: A Ray Train job that trains the network in place of `_train` (see `shelfwise.distributed`).
    train_runner: Callable[..., int] | None = None
    # The fit itself early-stops and chooses its blend on held-out history items; the tuning split
    # chooses only which items are held out inside the fit (a last-item holdout suits leave-last-out
    # data, a temporal one suits data split at a date, as UCI Online Retail is under P2).
    # Data split at a date also asks for items launched after it, so the temporal option comes with a
    # prior for new items (`cold_offset`): on the fit's own holdout too few shoppers take a new item
    # to decide it (on the Online Retail tuning split the prior scored ndcg@20 0.1175 against 0.1146,
    # cold recall@20 0.0517 against 0).
    tuning_grid = ({}, {"holdout": "temporal", "cold_offset": 1.0})
    # How strong that prior is changes only the scores: tried on the fitted model, no refit.
    rescoring_grid: ClassVar[dict[str, tuple[float, ...]]] = {"cold_offset": (0.5, 1.0, 1.5, 2.0, 3.0)}

    def __init__(
        self,
        *,
        encoder: str = DEFAULT_ENCODER,
        dim: int = 64,
        layers: int = 2,
        heads: int = 2,
        max_len: int = 50,
        dropout: float = 0.2,
        id_dropout: float = 0.3,
        epochs: int = 40,
        batch_size: int = 128,
        learning_rate: float = 1e-3,
        negatives: int = 0,
        patience: int = 3,
        max_seconds: float = 540.0,
        template: str = DEFAULT_TEMPLATE,
        cache_dir: str | None = None,
        blend: bool = True,
        holdout: str = "last",
        cold_offset: float = 0.0,
        seed: int = 42,
    ) -> None:
        self.encoder = encoder
        self.dim = dim
        self.layers = layers
        self.heads = heads
        self.max_len = max_len
        self.dropout = dropout
        self.id_dropout = id_dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.negatives = negatives
        self.patience = patience
        self.max_seconds = max_seconds
        self.template = template
        self.cache_dir = cache_dir
        self.blend = blend
        self.holdout = holdout
        self.cold_offset = cold_offset
        self.seed = seed

    def _validate_params(self) -> None:
        self._check_param("dim", int, 4, 4096)
        self._check_param("layers", int, 1, 24)
        self._check_param("heads", int, 1, 64)
        self._check_param("max_len", int, 2, 4096)
        self._check_param("dropout", float, 0.0, 0.9)
        self._check_param("id_dropout", float, 0.0, 1.0)
        self._check_param("epochs", int, 1, 10_000)
        self._check_param("batch_size", int, 1, 100_000)
        self._check_param("learning_rate", float, 1e-7, 1.0)
        self._check_param("negatives", int, 0, 1_000_000)
        self._check_param("patience", int, 1, 1000)
        self._check_param("max_seconds", float, 1.0, 1e6)
        self._check_param("cold_offset", float, 0.0, 100.0)
        if self.holdout not in ("last", "temporal"):
            raise ConfigError(f"'holdout' must be 'last' or 'temporal'. Got {self.holdout!r} instead.")
        if self.dim % self.heads:
            raise ConfigError(f"'dim' ({self.dim}) must be a multiple of 'heads' ({self.heads}).")

    # ------------------------------------------------------------------------------- data
    @staticmethod
    def _distinct_in_order(sequence: np.ndarray) -> np.ndarray:
        """Drop immediate repeats (a view then a purchase of one item is one step)."""
        if len(sequence) == 0:
            return sequence
        keep = np.ones(len(sequence), dtype=bool)
        keep[1:] = sequence[1:] != sequence[:-1]
        return sequence[keep]

    def _pad(self, sequences: list[np.ndarray]) -> np.ndarray:
        """Left-padded (len × max_len) array of the last `max_len` items (padding = n_items)."""
        out = np.full((len(sequences), self.max_len), self.n_items_, dtype=np.int64)
        for row, sequence in enumerate(sequences):
            tail = sequence[-self.max_len :]
            if len(tail):
                out[row, -len(tail) :] = tail
        return out

    def _windows(self, sequences: list[np.ndarray]) -> np.ndarray:
        """Training windows of `max_len` + 1 items covering each history once (long ones in chunks)."""
        chunks = []
        for sequence in sequences:
            end = len(sequence)
            while end >= 2:
                chunks.append(sequence[max(0, end - self.max_len - 1) : end])
                end -= self.max_len
        out = np.full((len(chunks), self.max_len + 1), self.n_items_, dtype=np.int64)
        for row, chunk in enumerate(chunks):
            out[row, -len(chunk) :] = chunk
        return out

    # ------------------------------------------------------------------------------- training
    def _fit(self, dataset: Dataset, *, progress: bool) -> None:
        """`max_seconds` bounds the whole fit: the holdout phase may use half of it; the blend, the
        final EASE and the final phase share what is left (the final phase trains at least one epoch).
        """
        started = time.perf_counter()
        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        encoded = encode_items(
            dataset.items,
            create_encoder(self.encoder),
            template=ItemTextTemplate(self.template),
            cache_dir=self.cache_dir,
            progress=progress,
        )
        self.text_vectors_ = encoded.vectors.astype(np.float32)
        sequences = [self._distinct_in_order(s) for s in dataset.sequences()]
        self.sequences_ = sequences
        counts = np.bincount(
            np.concatenate([s for s in sequences if len(s)] or [np.zeros(0, np.int64)]), minlength=self.n_items_
        )
        self.seen_ = counts > 0
        # (items, timestamps) the holdout may see, where there are timestamps
        self._holdout_events: tuple[np.ndarray, pd.Series] | None = None
        self.trending_ = None
        self.trend_half_life_ = 0.0
        train_sequences, holdout, targets = self._make_holdout(dataset, sequences)
        self.training_log_ = {"phases": [], "metric": "holdout ndcg@10", "seconds": {}}
        clock = self.training_log_["seconds"]
        clock["encode and prepare"] = round(time.perf_counter() - started, 1)
        mark = time.perf_counter()
        best_epochs = self._run_training(
            train_sequences,
            counts,
            rng,
            holdout=(holdout, targets),
            progress=progress,
            budget=self.max_seconds / 2 - (mark - started),
        )
        clock["holdout phase"] = round(time.perf_counter() - mark, 1)
        self.training_log_["best_epoch"] = best_epochs
        mark = time.perf_counter()
        self.weights_ = np.array([1.0, 0.0, 0.0, 0.0, 0.0])
        self.cold_factor_, self.cold_neighbour_count_, self.cold_offset_ = 0.0, 0, 0.0
        self.cf_regularization_ = 0.0
        if self.blend and holdout and self.n_items_ <= BLEND_MAX_ITEMS:
            self._choose_blend(train_sequences, holdout, targets)
        self.transitions_ = transition_matrix(sequences, self.n_items_)
        self.trending_ = None
        if self.weights_[4]:
            events = dataset.interactions
            self.trending_ = trending_scores(
                events["item"].to_numpy(), events["timestamp"], self.n_items_, self.trend_half_life_
            )
        self._holdout_events = None
        self._set_cold_neighbours()
        if self.weights_[1]:
            full = self._sequence_matrix(sequences)
            full.data[:] = 1.0
            self.cf_weights_ = ease_weights(full, self.cf_regularization_)
        clock["blend and EASE"] = round(time.perf_counter() - mark, 1)
        mark = time.perf_counter()
        if self.weights_[0]:
            torch.manual_seed(self.seed)
            self._run_training(
                sequences,
                counts,
                np.random.default_rng(self.seed),
                holdout=None,
                progress=progress,
                budget=self.max_seconds - (mark - started),
                epochs=best_epochs,
            )
            clock["final phase"] = round(time.perf_counter() - mark, 1)
        else:  # the blend gives the transformer no weight: its scores would not count
            logger.info("sequential: the blend gives the transformer no weight; no final phase")
            self.training_log_["final_phase"] = "skipped: the blend gives the transformer no weight"
        self.training_log_["blend"] = dict(zip(BLEND_PARTS, self.weights_.tolist(), strict=True))
        self.training_log_["cold_items"] = {
            "neighbours": self.cold_neighbour_count_,
            "factor": self.cold_factor_,
            "offset": self.cold_offset_,
        }
        if self.weights_[4]:
            self.training_log_["trend_half_life_days"] = self.trend_half_life_

    # ------------------------------------------------------------------------------- blending
    def _sequence_matrix(self, sequences: list[np.ndarray]) -> sp.csr_matrix:
        lengths = [len(x) for x in sequences]
        items = np.concatenate(sequences) if sequences else np.zeros(0, np.int64)
        rows = np.repeat(np.arange(len(sequences)), lengths)
        return sp.csr_matrix(
            (np.ones(len(items), np.float32), (rows, items)), shape=(len(sequences), self.n_items_)
        ).tocsr()

    def _components(self, sequences: list[np.ndarray], *, everything: bool = False) -> list[np.ndarray | None]:
        """Per-user z-scored component scores: transformer, collaborative (EASE), text profile,
        transitions (what usually comes right after the latest items) and trending (what sells now)."""
        parts: list[np.ndarray | None] = [self._score_sequences(sequences), None, None, None, None]
        if (everything or self.weights_[1]) and getattr(self, "cf_weights_", None) is not None:
            history = self._sequence_matrix(sequences)
            history.data[:] = 1.0
            parts[1] = np.asarray(history @ self.cf_weights_)
        if everything or self.weights_[2]:
            weights = recency_weights(sequences, self.n_items_, recency=0.8, max_history=self.max_len)
            parts[2] = profile_vectors(weights, self.text_vectors_) @ self.text_vectors_.T
        if everything or self.weights_[3]:
            parts[3] = self._next_scores(sequences)
        trending = getattr(self, "trending_", None)
        if (everything or self.weights_[4]) and trending is not None:
            parts[4] = np.repeat(trending[None], len(sequences), axis=0)
        return [None if part is None else _zscore(part) for part in parts]

    def _next_scores(self, sequences: list[np.ndarray]) -> np.ndarray:
        """Transition scores from the latest `_NEXT_STEPS` items, the latest weighing most."""
        rows: list[int] = []
        cols: list[int] = []
        vals: list[float] = []
        for row, sequence in enumerate(sequences):
            recent = sequence[-_NEXT_STEPS:][::-1]
            rows.extend([row] * len(recent))
            cols.extend(recent.tolist())
            vals.extend(_NEXT_DECAY ** np.arange(len(recent)))
        latest = sp.csr_matrix((vals, (rows, cols)), shape=(len(sequences), self.n_items_), dtype=np.float32)
        return (latest @ self.transitions_).toarray()

    def _make_holdout(
        self, dataset: Dataset, sequences: list[np.ndarray]
    ) -> tuple[list[np.ndarray], list[int], list[np.ndarray]]:
        """Training histories, held-out users and their held-out items, for early stopping and blending.

        ``last``: each history of 3 or more items loses its last item. ``temporal``: items a shopper
        first took in the last 10% of the time span are held out (what a temporal protocol asks).
        """
        stamps = dataset.interactions["timestamp"]
        if self.holdout == "temporal" and len(stamps) and stamps.notna().all():
            cutoff = stamps.quantile(0.9)
            frame = dataset.interactions.iloc[dataset.time_order()]
            frame = frame.drop_duplicates(["user", "item"], keep="first")
            late = (frame["timestamp"] >= cutoff).to_numpy()
            early_items = {u: set(g) for u, g in frame.loc[~late].groupby("user")["item"]}
            late_items = {u: np.unique(g.to_numpy()) for u, g in frame.loc[late].groupby("user")["item"]}
            train_sequences = [
                np.array([i for i in s if i in early_items.get(u, ())], dtype=np.int64) for u, s in enumerate(sequences)
            ]
            holdout = [u for u in sorted(late_items) if len(train_sequences[u])]
            targets = [late_items[u][~np.isin(late_items[u], train_sequences[u])] for u in holdout]
            keep = [row for row, t in enumerate(targets) if len(t)]
            early = dataset.interactions[(stamps < cutoff).to_numpy()]
            self._holdout_events = (early["item"].to_numpy(), early["timestamp"])
            return train_sequences, [holdout[r] for r in keep], [targets[r] for r in keep]
        if self.holdout == "temporal":
            logger.warning("sequential: no timestamps for a temporal holdout; holding out last items instead")
        holdout = [u for u, s in enumerate(sequences) if len(s) >= 3]
        train_sequences = [s[:-1] if len(s) >= 3 else s for s in sequences]
        if len(stamps) and stamps.notna().all():  # the trending part sees no held-out (user, item) pair
            n_items = dataset.n_items
            keys = dataset.interactions["user"].to_numpy() * n_items + dataset.interactions["item"].to_numpy()
            held = np.array([u * n_items + sequences[u][-1] for u in holdout], dtype=np.int64)
            kept = dataset.interactions[~np.isin(keys, held)]
            self._holdout_events = (kept["item"].to_numpy(), kept["timestamp"])
        return train_sequences, holdout, [np.array([sequences[u][-1]]) for u in holdout]

    def _choose_blend(self, train_sequences: list[np.ndarray], holdout: list[int], targets: list[np.ndarray]) -> None:
        """Pick the component weights, EASE's regularisation and the trending half-life on (at most 2,000
        of) the held-out users: a grid over the first four parts for each regularisation, then
        coordinate ascent over all five from the best grid point, for each half-life. Above
        `EASE_MAX_ITEMS` the blend has no EASE part."""
        shoppers = min(2000, max(500, BLEND_SCORE_BUDGET // self.n_items_))
        if len(holdout) > shoppers:
            picks = np.sort(np.random.default_rng(self.seed).choice(len(holdout), shoppers, replace=False))
            holdout, targets = [holdout[i] for i in picks], [targets[i] for i in picks]
        truncated = self._sequence_matrix(train_sequences)
        truncated.data[:] = 1.0
        self.transitions_ = transition_matrix(train_sequences, self.n_items_)
        inputs = [train_sequences[u] for u in holdout]
        seen = self._sequence_matrix(inputs)
        rows = np.repeat(np.arange(len(inputs)), np.diff(seen.indptr))

        def total(weights, parts) -> np.ndarray:
            scores = torch.zeros((len(inputs), self.n_items_))  # torch: one multithreaded pass per part
            for weight, part in zip(weights, parts, strict=True):
                if weight and part is not None:  # a part may be one row (trending): it broadcasts
                    scores.add_(torch.from_numpy(part), alpha=float(weight))
            return scores.numpy()

        def judge(scores: np.ndarray) -> float:  # changes `scores`
            scores[rows, seen.indices] = -np.inf
            return _holdout_ndcg(topk(scores, 10)[0], targets)

        best: tuple[float, tuple[float, ...], float] = (-1.0, (1.0, 0.0, 0.0, 0.0, 0.0), 0.0)
        chosen: np.ndarray | None = None
        chosen_parts: list[np.ndarray | None] = []
        with_ease = self.n_items_ <= EASE_MAX_ITEMS
        for regularization in (50.0, 250.0, 1000.0) if with_ease else (0.0,):
            self.cf_weights_ = ease_weights(truncated, regularization) if with_ease else None
            parts = self._components(inputs, everything=True)
            for grid_weights in _BLEND_GRID:
                if grid_weights[1] and not with_ease:
                    continue
                value = judge(total((*grid_weights, 0.0), parts))
                if value > best[0]:
                    best = (value, (*grid_weights, 0.0), regularization)
            if best[2] == regularization:
                chosen, chosen_parts = self.cf_weights_, parts  # kept, not inverted again
        grid_best = best
        self.cf_regularization_ = best[2]
        self.cf_weights_ = chosen
        half_lives: tuple[float | None, ...] = (None,)
        holdout_events = self._holdout_events
        if holdout_events is not None and len(holdout_events[0]):
            half_lives = TREND_HALF_LIVES
        chosen_half_life = None
        chosen_parts_final: list[np.ndarray | None] = chosen_parts
        for half_life in half_lives:
            parts = list(chosen_parts)
            if half_life is not None and holdout_events is not None:
                trend = trending_scores(holdout_events[0], holdout_events[1], self.n_items_, half_life)
                parts[4] = _zscore(trend[None])
            value, weights = grid_best[0], list(grid_best[1])
            current = total(weights, parts)  # the blend at `weights`; a trial changes one part of it
            for _ in range(_ASCENT_ROUNDS):
                moved = False
                for part in range(len(BLEND_PARTS)):
                    part_scores = parts[part]
                    if part_scores is None:
                        continue
                    for candidate in _ASCENT_VALUES:
                        if candidate == weights[part]:
                            continue
                        trial = [*weights[:part], candidate, *weights[part + 1 :]]
                        if not any(trial):
                            continue
                        result = judge(current + np.float32(candidate - weights[part]) * part_scores)
                        if result > value + 1e-9:
                            current += np.float32(candidate - weights[part]) * part_scores
                            value, weights, moved = result, trial, True
                if not moved:
                    break
            if value > best[0]:
                best = (value, tuple(weights), grid_best[2])
                chosen_half_life, chosen_parts_final = half_life, parts
        if best is grid_best:
            chosen_parts_final = chosen_parts
        self.weights_ = np.array(best[1], dtype=np.float64)
        self.trend_half_life_ = float(chosen_half_life or 0.0) if self.weights_[4] else 0.0
        if not self.trend_half_life_:
            self.weights_[4] = 0.0
        # Items no training history holds (cold) have no collaborative, transition or trending signal:
        # they inherit the blended score of their nearest warm items in text (see `inherit_cold`).
        parts = chosen_parts_final
        base = np.broadcast_to(
            sum(w * part for w, part in zip(self.weights_, parts, strict=True) if w), (len(inputs), self.n_items_)
        )
        cold = np.bincount(truncated.indices, minlength=self.n_items_) == 0
        cold_rows = np.array([bool(cold[target].any()) for target in targets], dtype=bool)
        if cold.any() and cold_rows.any():
            scores = base.copy()
            scores[rows, seen.indices] = -np.inf
            plain = _ndcg_rows(topk(scores, 10)[0], targets)
            # with a prior for new items, cold items always inherit
            options = [] if self.cold_offset else [(plain.mean(), plain[cold_rows].mean(), 0.0, 0)]
            for count in COLD_NEIGHBOURS:
                found = text_neighbours(self.text_vectors_, cold, count)
                for factor in COLD_FACTORS:
                    scores = base.copy()
                    inherit_cold(scores, *found, factor, self.cold_offset)
                    scores[rows, seen.indices] = -np.inf
                    ndcg = _ndcg_rows(topk(scores, 10)[0], targets)
                    options.append((ndcg.mean(), ndcg[cold_rows].mean(), factor, count))
            logger.debug("sequential cold options (ndcg, cold ndcg, factor, neighbours): %s", options)
            floor = max(option[0] for option in options) * (1.0 - COLD_TOLERANCE)
            overall, cold_value, self.cold_factor_, self.cold_neighbour_count_ = max(
                (option for option in options if option[0] >= floor), key=lambda option: (option[1], option[0])
            )
            self.cold_offset_ = self.cold_offset if self.cold_factor_ else 0.0
            logger.info(
                "sequential cold items: %s text neighbours, factor %s, offset %s (holdout ndcg@10 %.4f, on the "
                "%d shoppers with a cold item %.4f; without inheritance %.4f and %.4f)",
                self.cold_neighbour_count_,
                self.cold_factor_,
                self.cold_offset_,
                overall,
                int(cold_rows.sum()),
                cold_value,
                plain.mean(),
                plain[cold_rows].mean(),
            )
        elif self.cold_offset:  # nothing to judge the inheritance on: the defaults
            self.cold_factor_, self.cold_neighbour_count_ = 1.0, COLD_NEIGHBOURS[-1]
            self.cold_offset_ = self.cold_offset
        logger.info(
            "sequential blend: weights %s %s, EASE regularisation %s, trending half-life %s days "
            "(holdout ndcg@10 %.4f; the grid alone %.4f)",
            BLEND_PARTS,
            best[1],
            best[2],
            self.trend_half_life_,
            best[0],
            grid_best[0],
        )

    def _run_training(self, sequences, counts, rng, *, holdout, progress, budget, epochs=None) -> int:
        """`_train` here, or through `train_runner` (a Ray Train job: `shelfwise.distributed`), which
        trains on several workers and leaves the trained network in this model."""
        runner = getattr(self, "train_runner", None)
        if runner is None:
            return self._train(sequences, counts, rng, holdout=holdout, progress=progress, budget=budget, epochs=epochs)
        return runner(self, sequences, counts, rng, holdout=holdout, budget=budget, epochs=epochs)

    def _train(
        self,
        sequences: list[np.ndarray],
        counts: np.ndarray,
        rng: np.random.Generator,
        *,
        holdout: tuple[list[int], list[np.ndarray]] | None,
        progress: bool,
        budget: float,
        epochs: int | None = None,
        world=None,
    ) -> int:
        """Train a new network; returns the best epoch on `holdout` (or the epochs run without one).

        `world` (data-parallel training; see `shelfwise.distributed.train`) has ``rank``, ``size``,
        ``wrap(module)`` (DistributedDataParallel) and ``agree(flag)`` (true on every worker when true
        on one): each worker takes every size-th window of the same shuffled order, in batches of
        ``batch_size / size``, so one step sees about ``batch_size`` windows as a local step does."""
        network = self._new_network()
        negatives = self._negatives()
        sampled = bool(negatives) and negatives < int((counts > 0).sum())
        # Sampled steps touch few ID rows: a sparse gradient and lazy Adam keep them from updating
        # the whole table (a dense Adam step over a million-row table costs more than the rest).
        # Data-parallel training keeps dense gradients, which DistributedDataParallel all-reduces.
        sparse_ids = sampled and world is None
        if sparse_ids:
            others = [p for name, p in network.named_parameters() if name != "item_ids.weight"]
            optimizers = [
                torch.optim.Adam(others, lr=self.learning_rate),
                torch.optim.SparseAdam([network.item_ids.weight], lr=self.learning_rate),
            ]
        else:
            optimizers = [torch.optim.Adam(network.parameters(), lr=self.learning_rate)]
        text = torch.from_numpy(self.text_vectors_)
        log_q = torch.from_numpy(np.log((counts + 1.0) / (counts.sum() + len(counts))).astype(np.float32))
        windows = torch.from_numpy(self._windows(sequences))
        trained_items = torch.from_numpy(np.flatnonzero(counts > 0))
        # a full softmax runs over the items that occur in training, in `trained_items` order: an item
        # that is never a target would otherwise be pushed down as a negative in every step (cold items)
        trained_position = torch.full((self.n_items_ + 1,), -1, dtype=torch.long)
        trained_position[trained_items] = torch.arange(len(trained_items))
        pad = self.n_items_
        started = time.perf_counter()
        best, best_epoch, since_best = -1.0, 1, 0
        self.network_ = network
        limit = epochs or self.epochs
        phase = "holdout" if holdout is not None else "final"
        curve: list[dict] = []
        if hasattr(self, "training_log_"):
            self.training_log_.setdefault("phases", []).append({"name": phase, "epochs": curve})
        step = None if world is None else world.wrap(_TrainStep(network, text))
        batch_size = self.batch_size if world is None else max(1, -(-self.batch_size // world.size))
        with Progress(disable=not progress, transient=True) as bar, _deterministic():
            task = bar.add_task(f"sequential ({phase})", total=limit)
            for epoch in range(1, limit + 1):
                epoch_started, total_loss, steps = time.perf_counter(), 0.0, 0
                network.train()
                order = torch.from_numpy(rng.permutation(len(windows)))
                if world is not None:
                    order = order[world.rank :: world.size]
                for start in range(0, len(order), batch_size):
                    batch = windows[order[start : start + batch_size]]
                    if sampled:
                        picks = trained_items[torch.from_numpy(rng.integers(0, len(trained_items), negatives))]
                        logits, labels = sampled_logits(
                            network, text, batch, picks, log_q, id_dropout=self.id_dropout, sparse=sparse_ids, step=step
                        )
                    else:
                        inputs, targets = batch[:, :-1], batch[:, 1:]
                        mask = (targets != pad) & (inputs != pad)
                        keep = (torch.rand(self.n_items_) >= self.id_dropout).float()
                        if step is None:
                            table = network.item_table(text, keep)
                            hidden = network(inputs, table)
                        else:
                            hidden, table = step(inputs, keep)
                        hidden, targets = hidden[mask], targets[mask]
                        logits, labels = hidden @ table[trained_items].T, trained_position[targets]
                    loss = nn.functional.cross_entropy(logits, labels)
                    for optimizer in optimizers:
                        optimizer.zero_grad()
                    loss.backward()
                    for optimizer in optimizers:
                        optimizer.step()
                    total_loss, steps = total_loss + loss.detach().item(), steps + 1
                seconds = time.perf_counter() - epoch_started
                row = {"epoch": epoch, "loss": total_loss / max(steps, 1), "seconds": seconds}
                curve.append(row)
                description = f"sequential ({phase}) · loss {row['loss']:.4f}"
                if holdout is not None:
                    score = self._holdout_ndcg(sequences, *holdout)
                    row["holdout ndcg@10"] = score
                    description += f" · holdout ndcg@10 {score:.4f}"
                    logger.info("sequential epoch %d: holdout ndcg@10 %.4f", epoch, score)
                bar.update(task, advance=1, description=description)
                patience_out = False
                if holdout is not None:
                    if score > best:
                        best, best_epoch, since_best = score, epoch, 0
                        best_state = {key: value.detach().clone() for key, value in network.state_dict().items()}
                    else:
                        since_best += 1
                        patience_out = since_best >= self.patience
                if world is not None:
                    patience_out = world.agree(patience_out)
                if patience_out:
                    break
                over_budget = time.perf_counter() - started > budget
                if world is not None:
                    over_budget = world.agree(over_budget)
                if over_budget:
                    logger.warning("sequential: time budget reached after %d epochs", epoch)
                    break
        if holdout is not None and best_epoch < len(curve):
            # the blend is chosen with the network of the best epoch, not the one patience stopped at
            network.load_state_dict(best_state)
        self._freeze()
        return best_epoch if holdout is not None else limit

    def _negatives(self) -> int:
        """Sampled negatives per step: as set, or `SCALE_NEGATIVES` for a full softmax over a catalog
        larger than `FULL_SOFTMAX_MAX_ITEMS`."""
        if self.negatives == 0 and self.n_items_ > FULL_SOFTMAX_MAX_ITEMS:
            return SCALE_NEGATIVES
        return self.negatives

    def _new_network(self) -> _Network:
        return _Network(
            self.n_items_,
            self.text_vectors_.shape[1],
            self.dim,
            self.layers,
            self.heads,
            self.max_len + 1,
            self.dropout,
        )

    def _freeze(self) -> None:
        """Compute the inference item table once (no ID dropout)."""
        self.network_.eval()
        with torch.no_grad():
            self.item_table_ = self.network_.item_table(torch.from_numpy(self.text_vectors_)).numpy()

    def _holdout_ndcg(self, train_sequences: list[np.ndarray], holdout: list[int], targets: list[np.ndarray]) -> float:
        """NDCG@10 of the held-out items (a fixed sample of the shoppers on a large catalog; see
        `HOLDOUT_SCORE_BUDGET`), scored in chunks so no shoppers × items matrix is held."""
        self._freeze()
        limit = max(2000, HOLDOUT_SCORE_BUDGET // max(self.n_items_, 1))
        if len(holdout) > limit:
            picks = np.sort(np.random.default_rng(self.seed).choice(len(holdout), limit, replace=False))
            holdout, targets = [holdout[i] for i in picks], [targets[i] for i in picks]
        found = []
        for start in range(0, len(holdout), 256):
            chunk = holdout[start : start + 256]
            scores = self._score_sequences([train_sequences[u] for u in chunk])
            for row, user in enumerate(chunk):
                scores[row, train_sequences[user]] = -np.inf
            found.append(topk(scores, 10)[0])
        return _holdout_ndcg(np.vstack(found) if found else np.zeros((0, 10), np.int64), targets)

    # ------------------------------------------------------------------------------- scoring
    def _score_sequences(self, sequences: list[np.ndarray]) -> np.ndarray:
        network = self.network_
        table = torch.from_numpy(self.item_table_)
        out = np.empty((len(sequences), self.n_items_), dtype=np.float32)
        with torch.no_grad():
            for start in range(0, len(sequences), 256):
                padded = torch.from_numpy(self._pad(sequences[start : start + 256]))
                hidden = network(padded, table)[:, -1]
                out[start : start + 256] = (hidden @ table.T).numpy()
        empty = np.array([len(s) == 0 for s in sequences])
        if empty.any():
            out[empty] = 0.0
        return out

    def user_vector(self, sequence: np.ndarray) -> np.ndarray:
        """The shopper's vector after `sequence` (item indices, oldest first); no refit needed."""
        padded = torch.from_numpy(self._pad([np.asarray(sequence, dtype=np.int64)]))
        with torch.no_grad():
            return self.network_(padded, torch.from_numpy(self.item_table_))[0, -1].numpy()

    def _set_cold_neighbours(self) -> None:
        """The text neighbours of the items no fitted history holds (`inherit_cold`), as chosen."""
        cold = ~self.seen_ if self.cold_factor_ else np.zeros(self.n_items_, dtype=bool)
        found = text_neighbours(self.text_vectors_, cold, self.cold_neighbour_count_)
        self.cold_items_, self.cold_neighbours_, self.cold_neighbour_weights_ = found

    def rescored(self, **params) -> bool:
        """Another `cold_offset` for a model fitted with a prior for new items (the neighbours and
        the factor its holdout chose stay)."""
        offset = params.pop("cold_offset", None)
        if params or offset is None or not self.cold_offset or not self.cold_factor_:
            return False
        fitted, self.cold_offset = self.cold_offset, offset
        try:
            self._check_param("cold_offset", float, 1e-9, 100.0)
        except ConfigError:
            self.cold_offset = fitted  # the model stays as it was
            raise
        self.cold_offset_ = float(offset)
        return True

    def _blended(self, sequences: list[np.ndarray]) -> np.ndarray:
        if not self.weights_[1:].any() and not self.cold_factor_:
            return self._score_sequences(sequences)
        parts = self._components(sequences)
        scores = sum(w * part for w, part in zip(self.weights_, parts, strict=True) if w)
        scores = np.array(np.broadcast_to(scores, (len(sequences), self.n_items_)), dtype=np.float32)
        if self.cold_factor_ and len(sequences):
            found = (self.cold_items_, self.cold_neighbours_, self.cold_neighbour_weights_)
            inherit_cold(scores, *found, self.cold_factor_, self.cold_offset_)
        return scores

    def _score(self, users: np.ndarray, user_items: sp.csr_matrix) -> np.ndarray:
        sequences = [self.sequences_[u] if u < len(self.sequences_) else np.zeros(0, np.int64) for u in users]
        return self._blended(sequences)

    def score_histories(self, histories: list[np.ndarray]) -> np.ndarray:
        """The blended scores after each history (oldest first): the transformer reads it as is."""
        self._require_fitted()
        self._rows_of(histories)  # range check
        sequences = [self._distinct_in_order(np.asarray(h, dtype=np.int64)) for h in histories]
        return self._blended(sequences).astype(np.float64)

    def recommend_for_sequence(
        self, sequence: np.ndarray, k: int = 10, *, exclude_seen: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k for an anonymous or updated history (item indices, oldest first)."""
        sequence = np.asarray(sequence, dtype=np.int64)
        scores = self._blended([sequence])
        if exclude_seen and len(sequence):
            scores[0, sequence] = -np.inf
        ids, top = topk(scores, k)
        return ids[0], top[0]

    def recommend_for_words(self, words: str, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Top-k for a shopper known only by a few words: the words, encoded by the same encoder and
        projected like an item's text, are the one step of the history; the text similarity joins in."""
        if getattr(self, "_query_encoder", None) is None:
            self._query_encoder = create_encoder(self.encoder)  # loaded once, not per query
        vector = self._query_encoder.encode([words])
        with torch.no_grad():
            step = self.network_.text_projection(torch.from_numpy(vector))
            inputs = torch.zeros(1, self.max_len, step.shape[1])
            inputs[0, -1] = step[0]
            hidden = self.network_.run(inputs)[:, -1]
            sequential = (hidden @ torch.from_numpy(self.item_table_).T).numpy()
        scores = _zscore(sequential) + _zscore(vector @ self.text_vectors_.T)
        ids, top = topk(scores, k)
        return ids[0], top[0]

    def item_vectors(self) -> np.ndarray:
        return self.item_table_

    def _forget_user_state(self, user: int) -> None:
        if user < len(self.sequences_):
            self.sequences_[user] = np.zeros(0, dtype=np.int64)

    # ------------------------------------------------------------------------------- storage
    def _state(self) -> dict[str, np.ndarray]:
        lengths = np.array([len(s) for s in self.sequences_], dtype=np.int64)
        state = {f"net.{k}": v.detach().numpy() for k, v in self.network_.state_dict().items()}
        if self.weights_[1]:
            state["cf_weights"] = self.cf_weights_
        if self.weights_[4]:
            state["trending"] = self.trending_
            state["trend_half_life"] = np.array(self.trend_half_life_)
        transitions = self.transitions_
        state.update(
            transitions_data=transitions.data,
            transitions_indices=transitions.indices,
            transitions_indptr=transitions.indptr,
            blend_weights=self.weights_,
            cold_factor=np.array(self.cold_factor_),
            cold_neighbour_count=np.array(self.cold_neighbour_count_),
            cold_offset=np.array(self.cold_offset_),
            seen=self.seen_,
            cf_regularization=np.array(self.cf_regularization_),
            text_vectors=self.text_vectors_,
            seq_lengths=lengths,
            seq_items=np.concatenate(self.sequences_ or [np.zeros(0, np.int64)]).astype(np.int64),
        )
        return state

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        self.text_vectors_ = state["text_vectors"]
        weights = state["blend_weights"]  # models saved before the trending part have four weights
        self.weights_ = np.concatenate([weights, np.zeros(len(BLEND_PARTS) - len(weights))])
        self.trending_ = state.get("trending")
        self.trend_half_life_ = float(state.get("trend_half_life", 0.0))
        self.seen_ = state["seen"].astype(bool)
        self.cold_factor_ = float(state.get("cold_factor", 0.0))  # models saved before it: no inheritance
        self.cold_neighbour_count_ = int(state.get("cold_neighbour_count", 0))
        self.cold_offset_ = float(state.get("cold_offset", 0.0))
        self._set_cold_neighbours()
        self.transitions_ = sp.csr_matrix(
            (state["transitions_data"], state["transitions_indices"], state["transitions_indptr"]),
            shape=(self.n_items_, self.n_items_),
        )
        self.cf_regularization_ = float(state["cf_regularization"])
        if "cf_weights" in state:
            self.cf_weights_ = state["cf_weights"]
        bounds = np.concatenate([[0], np.cumsum(state["seq_lengths"])])
        self.sequences_ = [state["seq_items"][bounds[i] : bounds[i + 1]] for i in range(len(bounds) - 1)]
        self.network_ = self._new_network()
        self.network_.load_state_dict({k[4:]: torch.from_numpy(v) for k, v in state.items() if k.startswith("net.")})
        self._freeze()
