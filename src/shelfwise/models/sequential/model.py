"""The sequential model as a `Recommender`: what a fit does in which order, scoring, and state.

A fit encodes the items' text, holds out some history, trains the network on the rest (early
stopping on the holdout), chooses the blend and the cold-item policy on the holdout, then trains the
network again on everything for as many epochs as the holdout chose, where the time budget
leaves room for them.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch

from shelfwise.data.dataset import Dataset
from shelfwise.errors import ConfigError
from shelfwise.models.base import Param, Recommender, register
from shelfwise.models.sequential import blend as blending
from shelfwise.models.sequential.blend import (
    BLEND_PARTS,
    ITEM_INPUT_PARTS,
    ITEM_INPUTS,
    BlendParts,
    BlendWeights,
    blended,
    popularity_scores,
)
from shelfwise.models.sequential.cold import ColdNeighbours, ColdPolicy, choose_cold_policy, cold_options
from shelfwise.models.sequential.histories import (
    Holdout,
    checked_distinct,
    distinct_in_order,
    has_timestamps,
    item_counts,
    make_holdout,
    pad,
    saved_sequences,
    saved_transitions,
    sequence_matrix,
)
from shelfwise.models.sequential.network import Network, frozen_table, last_hidden, score_padded
from shelfwise.models.sequential.training import (
    FULL_SOFTMAX_MAX_ITEMS,
    SCALE_NEGATIVES,
    TrainingJob,
    TrainResult,
    TrainSettings,
    epoch_seconds,
    holdout_ndcg,
    positions,
    train_network,
)
from shelfwise.text.encoder import DEFAULT_ENCODER, create_encoder
from shelfwise.text.item_text import DEFAULT_TEMPLATE, ItemTextTemplate
from shelfwise.text.pipeline import encode_items

logger = logging.getLogger(__name__)

#: The blend runs up to this many items; above it the transformer alone scores. The blend is chosen
#: on dense held-out user × item scores, and serving computes the text profile over every item. On
#: synthetic shops of `benchmarks/scale.py`'s generator (one training epoch per phase, 2 cores):
#: 30,000 items and 300,000 events, the blend chosen in 59 s on 1,333 held-out shoppers, peak memory
#: 2.9 GB, a recommendation 13 ms; 50,000 items and 500,000 events, 66 s on 800 shoppers, 3.5 GB, 16 ms.
BLEND_MAX_ITEMS = 50_000

#: Shares of `max_seconds` (from the fit's start) after which the holdout phase starts no epoch, and
#: within an epoch stops; and after which the blend's search tries no more weights. The final phase
#: has what is left.
HOLDOUT_BUDGET = (0.5, 0.6, 0.8)

#: Trains one phase: `train_network` here, or a Ray Train job (`shelfwise.distributed`).
TrainRunner = Callable[[TrainingJob, np.random.Generator], TrainResult]


@register
class SequentialRecommender(Recommender):
    """Causal transformer over a shopper's recent items, with text-informed item vectors, blended
    with EASE, a text profile, next-item transitions and what sells now (`blend`).

    The hyperparameters, with what each means and may be, are declared in `params` (listed by
    ``shelfwise train --model sequential --help-params``).
    """

    params: ClassVar[dict[str, Param]] = {
        "encoder": Param("sentence encoder: 'default' (all-MiniLM-L6-v2), a model name or a folder", str),
        "dim": Param("width of the transformer and of the item vectors; a multiple of heads", int, 4, 4096),
        "layers": Param("transformer layers", int, 1, 24),
        "heads": Param("attention heads per layer", int, 1, 64),
        "max_len": Param("how many of a shopper's latest items the transformer reads", int, 2, 4096),
        "dropout": Param("dropout inside the transformer while training", float, 0.0, 0.9),
        "id_dropout": Param(
            "chance of dropping an item's ID embedding in a training step, so the text projection alone must "
            "carry it (as it must for a new item)",
            float,
            0.0,
            1.0,
        ),
        "epochs": Param("the most epochs per phase; early stopping on the holdout picks fewer", int, 1, 10_000),
        "batch_size": Param("training windows per step", int, 1, 100_000),
        "learning_rate": Param("Adam's step size", float, 1e-7, 1.0),
        "negatives": Param(
            f"0: a full softmax over the items (up to {FULL_SOFTMAX_MAX_ITEMS:,}; above, {SCALE_NEGATIVES:,} "
            "sampled); otherwise this many uniform negatives with a popularity correction, at a cost that "
            "does not grow with the catalog",
            int,
            0,
            1_000_000,
        ),
        "patience": Param("epochs without a better holdout score before a phase stops", int, 1, 1000),
        "max_seconds": Param(
            "wall-clock budget of the whole fit, encoding to final phase (held within 10% on 2 cores): the "
            "holdout phase starts no epoch after half of it and stops inside one at 60%; the blend's search "
            "stops at 80%; the final phase runs only where its epochs fit in what is left",
            float,
            1.0,
            1e6,
        ),
        "template": Param("how an item's fields become the text encoded (see ItemTextTemplate)", str),
        "cache_dir": Param("embedding cache folder (null: the settings' cache)", str, optional=True),
        "blend": Param(
            "blend the transformer with EASE (up to 12,000 items), the text profile, transitions and trending, "
            f"weights chosen on the fit's holdout (up to {BLEND_MAX_ITEMS:,} items; above, the transformer alone)",
            bool,
        ),
        "holdout": Param(
            "what early stopping and the blend are judged on: each history's last item, or the items first "
            "taken in the last 10% of the time span",
            str,
            choices=("last", "temporal"),
        ),
        "item_inputs": Param(
            "what an item's vector is made of: projected text plus an ID embedding (shipped), or, for "
            "ablations, IDs only (no language model anywhere) or text only (no IDs anywhere)",
            str,
            choices=ITEM_INPUTS,
        ),
        "cold_offset": Param(
            "a prior that new items sell: they score this many of the shopper's standard deviations above "
            "what they inherit from their text neighbours (0: the holdout decides whether they inherit)",
            float,
            0.0,
            100.0,
        ),
        "popularity_prior": Param(
            "weight of the z-scored popularity added to every score (changeable without a refit)", float, 0.0, 100.0
        ),
        "seed": Param("the same seed and data give the same locally trained model, bit for bit", int, 0, 2**32 - 1),
    }

    name = "sequential"
    #: Trains a phase in place of `train_network` (a Ray Train job: `shelfwise.distributed`).
    train_runner: TrainRunner | None = None
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
    # Ranked among a few sampled items (P3), where the full ranking's top matters less than how the
    # many items without a signal are ordered, how much popularity counts is chosen the same way.
    sampled_rescoring_grid: ClassVar[dict[str, tuple[float, ...]]] = {"popularity_prior": (0.3, 1.0, 3.0)}

    @classmethod
    def trial_differs(cls, params: dict[str, Any], dataset: Dataset) -> bool:
        """A temporal holdout needs timestamps: without them the fit would repeat the default fit but
        for the prior for new items, which only data split at a date asks for (see `tuning_grid`)."""
        return params.get("holdout") != "temporal" or has_timestamps(dataset)

    #: Fitted state (see `_fit`).
    text_vectors_: np.ndarray
    sequences_: list[np.ndarray]
    seen_: np.ndarray
    network_: Network
    item_table_: np.ndarray
    blend_: BlendWeights
    parts_: BlendParts
    cf_regularization_: float
    trend_half_life_: float
    cold_: ColdPolicy
    cold_neighbours_: ColdNeighbours
    training_log_: dict[str, Any]

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
        item_inputs: str = "text+ids",
        cold_offset: float = 0.0,
        popularity_prior: float = 0.0,
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
        self.item_inputs = item_inputs
        self.cold_offset = cold_offset
        self.popularity_prior = popularity_prior
        self.seed = seed

    def _validate_params(self) -> None:
        super()._validate_params()
        if self.dim % self.heads:
            raise ConfigError(f"'dim' ({self.dim}) must be a multiple of 'heads' ({self.heads}).")

    # ------------------------------------------------------------------------------- the fit
    def _fit(self, dataset: Dataset, *, progress: bool) -> None:
        """`max_seconds` bounds the whole fit (`HOLDOUT_BUDGET`); the final phase runs only where its
        epochs, timed on the holdout phase's, fit in what is left, and is cut at the end of it."""
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
        sequences = [distinct_in_order(s) for s in dataset.sequences()]
        self.sequences_ = sequences
        counts = item_counts(sequences, self.n_items_)
        self.seen_ = counts > 0
        holdout = make_holdout(dataset, sequences, self.holdout)
        self.training_log_ = {"phases": [], "metric": "holdout ndcg@10", "seconds": {}}
        clock = self.training_log_["seconds"]
        clock["encode and prepare"] = round(time.perf_counter() - started, 1)
        mark = time.perf_counter()
        evaluate = functools.partial(
            holdout_ndcg, text_vectors=self._network_text(), max_len=self.max_len, holdout=holdout, seed=self.seed
        )
        best_epochs = self._train_phase(
            "holdout",
            holdout.train,
            counts,
            rng,
            evaluate,
            budget=self.max_seconds * HOLDOUT_BUDGET[0] - (mark - started),
            cutoff=self.max_seconds * HOLDOUT_BUDGET[1] - (mark - started),
            progress=progress,
        )
        clock["holdout phase"] = round(time.perf_counter() - mark, 1)
        self.training_log_["best_epoch"] = best_epochs
        mark = time.perf_counter()
        self._choose_blend(dataset, sequences, holdout, deadline=started + self.max_seconds * HOLDOUT_BUDGET[2])
        clock["blend and EASE"] = round(time.perf_counter() - mark, 1)
        mark = time.perf_counter()
        left = self.max_seconds - (mark - started)
        needed = best_epochs * epoch_seconds(self.training_log_["phases"][0]["epochs"])
        needed *= positions(sequences) / max(positions(holdout.train), 1)
        if not self.blend_.transformer:  # the blend gives the transformer no weight: its scores would not count
            self.training_log_["final_phase"] = "skipped: the blend gives the transformer no weight"
        elif needed > left:  # the holdout phase's network (all but each history's held-out items) serves
            self.training_log_["final_phase"] = (
                f"skipped: its {best_epochs} epochs need about {needed:.0f} s and the time budget leaves {left:.0f} s"
            )
        else:
            torch.manual_seed(self.seed)
            rng = np.random.default_rng(self.seed)
            phase = functools.partial(self._train_phase, "final", sequences, counts, rng, None, epochs=best_epochs)
            phase(budget=left, cutoff=left, progress=progress)
            clock["final phase"] = round(time.perf_counter() - mark, 1)
        if "final_phase" in self.training_log_:
            logger.info("sequential: final phase %s", self.training_log_["final_phase"])
        self.training_log_["blend"] = self.blend_.as_dict()
        self.training_log_["cold_items"] = {
            "neighbours": self.cold_.neighbours,
            "factor": self.cold_.factor,
            "offset": self.cold_.offset,
            "text": self.cold_.text,
        }
        if self.blend_.trending:
            self.training_log_["trend_half_life_days"] = self.trend_half_life_

    def _train_phase(
        self,
        phase: str,
        sequences: list[np.ndarray],
        counts: np.ndarray,
        rng: np.random.Generator,
        evaluate: Callable[[Network], float] | None,
        *,
        budget: float,
        cutoff: float,
        progress: bool,
        epochs: int | None = None,
    ) -> int:
        """Train the network for one phase (here, or through `train_runner`); returns the best epoch
        on the holdout (or the epochs run without one). The trained network becomes this model's."""
        job = TrainingJob(
            make_network=self._network_factory(),
            text_vectors=self._network_text(),
            sequences=sequences,
            counts=counts,
            settings=TrainSettings(
                epochs=self.epochs,
                batch_size=self.batch_size,
                learning_rate=self.learning_rate,
                id_dropout={"ids": 0.0, "text": 1.0}.get(self.item_inputs, self.id_dropout),
                patience=self.patience,
                negatives=self.negatives,
            ),
            max_len=self.max_len,
            evaluate=evaluate,
            budget=budget,
            epochs=epochs or self.epochs,
            phase=phase,
            seed=self.seed,
            cutoff=cutoff,
        )
        runner = self.train_runner
        result = train_network(job, rng, progress=progress) if runner is None else runner(job, rng)
        entry: dict[str, Any] = {"name": phase, "epochs": result.curve, "stopped": result.stopped}
        if result.workers > 1:
            entry["workers"] = result.workers
        self.training_log_["phases"].append(entry)
        self._use_network(result.network)
        return result.best_epoch

    def _choose_blend(
        self, dataset: Dataset, sequences: list[np.ndarray], holdout: Holdout, *, deadline: float = np.inf
    ) -> None:
        """The blend and the cold-item policy (from the holdout), then the blend's parts refitted on
        every history."""
        self.blend_, self.cold_ = BlendWeights(), ColdPolicy()
        self.cf_regularization_, self.trend_half_life_ = 0.0, 0.0
        if self.blend and holdout.users and self.n_items_ <= BLEND_MAX_ITEMS:
            choice = blending.choose_blend(
                holdout,
                self.n_items_,
                self._transformer_scores,
                self.text_vectors_,
                seed=self.seed,
                allowed=ITEM_INPUT_PARTS[self.item_inputs],
                deadline=deadline,
            )
            self.blend_, self.cf_regularization_ = choice.weights, choice.cf_regularization
            self.trend_half_life_ = choice.half_life
            # Items no training history holds (cold) have no collaborative, transition or trending
            # signal: they inherit the blended score of their nearest warm items in text.
            if self.item_inputs != "ids":  # without text, no neighbours in text
                options, cold_rows = cold_options(
                    choice.scores,
                    choice.seen,
                    choice.holdout.targets,
                    choice.cold,
                    self.text_vectors_,
                    self.cold_offset,
                    choice.text,
                )
                self.cold_ = choose_cold_policy(options, cold_rows, self.cold_offset)
        self.parts_ = BlendParts.fitted(
            sequences,
            dataset.interactions,
            self.text_vectors_,
            self.blend_,
            self.cf_regularization_,
            self.trend_half_life_,
        )
        self._set_cold_neighbours()

    def _network_factory(self) -> Callable[[], Network]:
        return functools.partial(
            Network,
            self.n_items_,
            self.text_vectors_.shape[1],
            self.dim,
            self.layers,
            self.heads,
            self.max_len + 1,
            self.dropout,
            id_std=0.02 if self.item_inputs == "ids" else 0.0,
        )

    def _network_text(self) -> np.ndarray:
        """The text vectors the network reads: none (zeros) where items are IDs only."""
        return np.zeros_like(self.text_vectors_) if self.item_inputs == "ids" else self.text_vectors_

    def _use_network(self, network: Network) -> None:
        """Serve with `network`: its inference item table is computed once (no ID dropout)."""
        self.network_ = network
        self.item_table_ = frozen_table(network, self._network_text())

    def _set_cold_neighbours(self) -> None:
        """The text neighbours of the items no fitted history holds, as the cold policy says."""
        cold = ~self.seen_ if self.cold_.factor else np.zeros(self.n_items_, dtype=bool)
        self.cold_neighbours_ = ColdNeighbours.of(self.text_vectors_, cold, self.cold_.neighbours)

    # ------------------------------------------------------------------------------- scoring
    def _transformer_scores(self, sequences: list[np.ndarray]) -> np.ndarray:
        return score_padded(self.network_, self.item_table_, pad(sequences, self.max_len, self.n_items_))

    def _blended(self, sequences: list[np.ndarray]) -> np.ndarray:
        scores = self._blended_parts(sequences)
        if self.popularity_prior:  # after the cold items' scoring: they count as taken by nobody
            scores = scores + self.parts_.prior(self.popularity_prior)
        if self.item_inputs == "ids" and scores.size:  # no text: an item no history held is ranked last
            scores[:, ~self.seen_] = scores.min(axis=1, keepdims=True) - 1.0
        return scores

    def _blended_parts(self, sequences: list[np.ndarray]) -> np.ndarray:
        if self.blend_.transformer_only and not self.cold_.factor:
            return self._transformer_scores(sequences)
        parts = self.parts_.scores(sequences, self._transformer_scores(sequences), self.blend_)
        scores = blended(self.blend_, parts, len(sequences), self.n_items_)
        if len(sequences):
            text = parts[2] if parts[2] is not None or not self.cold_.text else self.parts_.text_scores(sequences)
            self.cold_neighbours_.inherit(scores, self.cold_, text)
        return scores

    def _score(self, users: np.ndarray, user_items: sp.csr_matrix) -> np.ndarray:
        sequences = [self.sequences_[u] if u < len(self.sequences_) else np.zeros(0, np.int64) for u in users]
        return self._blended(sequences)

    def score_histories(self, histories: list[np.ndarray]) -> np.ndarray:
        """The blended scores after each history (oldest first): the transformer reads it as is."""
        self._require_fitted()
        self._rows_of(histories)  # range check
        sequences = [distinct_in_order(np.asarray(h, dtype=np.int64)) for h in histories]
        return self._blended(sequences).astype(np.float64)

    def rescored(self, **params: Any) -> bool:
        """Another `popularity_prior`, or another `cold_offset` for a model fitted with a prior for new
        items (same neighbours, factor)."""
        if set(params) == {"popularity_prior"}:
            return self._rescore("popularity_prior", params["popularity_prior"], 0.0)
        offset = params.pop("cold_offset", None)
        if params or offset is None or not self.cold_offset or not self.cold_.factor:
            return False
        self._rescore("cold_offset", offset, 1e-9)
        self.cold_ = self.cold_.with_offset(float(offset))
        return True

    def _rescore(self, name: str, value: Any, low: float) -> bool:
        fitted = getattr(self, name)
        setattr(self, name, value)
        try:
            self._check_param(name, float, low, 100.0)
        except ConfigError:
            setattr(self, name, fitted)  # the model stays as it was
            raise
        return True

    def item_vectors(self) -> np.ndarray:
        return self.item_table_

    def scoring_vectors(self) -> np.ndarray | None:
        """The item table where the served score is the transformer's alone (the blend chose no other
        part and no prior for new items): then a score is the history's last hidden state against it,
        and the serving engine retrieves from a vector index instead of scoring every item."""
        self._require_fitted()
        if self.item_inputs == "ids":  # an ablation: its untrained items are ranked last, not by vectors
            return None
        plain = self.blend_.transformer_only and not self.cold_.factor and not self.popularity_prior
        return self.item_table_ if plain else None

    def text_item_vectors(self, text_vectors: np.ndarray) -> np.ndarray | None:
        """What the network's item table holds for an item with no interactions: its projected text
        (the ID part is empty), as for the items no training history held."""
        if self.scoring_vectors() is None or text_vectors.shape[1] != self.network_.text_projection.in_features:
            return None
        with torch.no_grad():
            text = torch.from_numpy(np.ascontiguousarray(text_vectors, np.float32))
            return self.network_.text_projection(text).numpy()

    def query_vectors(self, histories: list[np.ndarray]) -> np.ndarray:
        """The last hidden state after each history (see `scoring_vectors`)."""
        if self.scoring_vectors() is None:
            raise NotImplementedError("this fit blends other parts in: its scores are not inner products")
        sequences = checked_distinct(histories, self.n_items_)
        return last_hidden(self.network_, self.item_table_, pad(sequences, self.max_len, self.n_items_))

    def _forget_user_state(self, user: int) -> None:
        if user < len(self.sequences_):
            self.sequences_[user] = np.zeros(0, dtype=np.int64)

    # ------------------------------------------------------------------------------- storage
    def _state(self) -> dict[str, np.ndarray]:
        """Every array a fitted model needs to score again (what `save` writes)."""
        lengths = np.array([len(s) for s in self.sequences_], dtype=np.int64)
        state = {f"net.{k}": v.detach().numpy() for k, v in self.network_.state_dict().items()}
        if self.blend_.ease and self.parts_.cf_weights is not None:
            state["cf_weights"] = self.parts_.cf_weights
        if self.blend_.trending and self.parts_.trending is not None:
            state["trending"] = self.parts_.trending
            state["trend_half_life"] = np.array(self.trend_half_life_)
        if self.parts_.popularity is not None:
            state["popularity"] = self.parts_.popularity
        transitions = self.parts_.transitions
        state.update(
            transitions_data=transitions.data,
            transitions_indices=transitions.indices,
            transitions_indptr=transitions.indptr,
            blend_weights=self.blend_.array(),
            cold_factor=np.array(self.cold_.factor),
            cold_neighbour_count=np.array(self.cold_.neighbours),
            cold_offset=np.array(self.cold_.offset),
            cold_text=np.array(self.cold_.text),
            seen=self.seen_,
            cf_regularization=np.array(self.cf_regularization_),
            text_vectors=self.text_vectors_,
            seq_lengths=lengths,
            seq_items=np.concatenate(self.sequences_ or [np.zeros(0, np.int64)]).astype(np.int64),
        )
        return state

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        """Set the fitted state from the arrays `_state` made (a model saved before they held the items'
        popularity counts it again from its fitted histories)."""
        self.text_vectors_ = state["text_vectors"]
        self.blend_ = BlendWeights.of(state["blend_weights"].tolist())
        self.trend_half_life_ = float(state.get("trend_half_life", 0.0))
        self.seen_ = state["seen"].astype(bool)
        self.cold_ = ColdPolicy.of_state(state)
        self._set_cold_neighbours()
        self.sequences_ = saved_sequences(state)
        popularity = state.get("popularity")
        if popularity is None:
            popularity = popularity_scores(sequence_matrix(self.sequences_, self.n_items_))
        self.parts_ = BlendParts(
            self.n_items_,
            self.text_vectors_,
            saved_transitions(state, self.n_items_),
            state.get("cf_weights"),
            state.get("trending"),
            popularity,
        )
        self.cf_regularization_ = float(state["cf_regularization"])
        network = self._network_factory()()
        network.load_state_dict({k[4:]: torch.from_numpy(v) for k, v in state.items() if k.startswith("net.")})
        self._use_network(network)

    # ------------------------------------------------------------------------------- views
    @property
    def weights_(self) -> np.ndarray:
        """The blend's weights in `BLEND_PARTS` order."""
        return self.blend_.array()

    @property
    def cold_offset_(self) -> float:
        return self.cold_.offset


__all__ = ["BLEND_PARTS", "SequentialRecommender"]
