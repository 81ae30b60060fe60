"""Training the sequential network: full or sampled softmax, early stopping on a holdout, a time
budget, and data-parallel hooks (`World`) that the Ray path (`shelfwise.distributed.train`) fills in.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from rich.progress import Progress
from torch import nn

from shelfwise.models.sequential.histories import Holdout, pad, windows
from shelfwise.models.sequential.network import (
    Network,
    TrainStep,
    deterministic,
    frozen_table,
    sampled_logits,
    score_padded,
)
from shelfwise.ranking import mean_ndcg, topk

logger = logging.getLogger(__name__)

#: ``negatives=0`` means a full softmax up to this many items; above it a step would score every
#: item at every position (items × positions), so `SCALE_NEGATIVES` sampled negatives are used.
#: On MovieLens-latest (9,066 items) the sampled step takes 6 to 7 s an epoch against 10 to 11 s and
#: early-stops inside the budget; on its tuning split it scored ndcg@10 0.0872 and 0.0853 in two runs
#: against 0.0861 (the same, within noise), and 0.0837 against 0.0814 on its test split.
FULL_SOFTMAX_MAX_ITEMS = 5_000
SCALE_NEGATIVES = 2048


def negatives_for(negatives: int, n_items: int) -> int:
    """Sampled negatives per step: as set, or `SCALE_NEGATIVES` for a full softmax (0) over a
    catalog larger than `FULL_SOFTMAX_MAX_ITEMS`."""
    if negatives == 0 and n_items > FULL_SOFTMAX_MAX_ITEMS:
        return SCALE_NEGATIVES
    return negatives


class World(Protocol):
    """Data-parallel training: this worker's `rank` of `size`; `wrap` a module for
    DistributedDataParallel; `agree(flag)` is true on every worker when it is true on one."""

    rank: int
    size: int

    def wrap(self, module: nn.Module) -> nn.Module: ...

    def agree(self, flag: bool) -> bool: ...


#: Early stopping scores its held-out shoppers against every item: at most this many user × item
#: scores per check (and never fewer than 2,000 shoppers), a sample of them when there are more.
HOLDOUT_SCORE_BUDGET = 1_000_000_000


def holdout_ndcg(network: Network, text_vectors: np.ndarray, max_len: int, holdout: Holdout, *, seed: int) -> float:
    """NDCG@10 of the held-out items under the network alone (a fixed sample of the shoppers on a
    large catalog; see `HOLDOUT_SCORE_BUDGET`), scored in chunks so no shoppers × items matrix is held.
    Leaves the network in eval mode."""
    table = frozen_table(network, text_vectors)
    n_items = len(table)
    holdout = holdout.sample(max(2000, HOLDOUT_SCORE_BUDGET // max(n_items, 1)), seed)
    found = []
    for start in range(0, len(holdout.users), 256):
        chunk = holdout.users[start : start + 256]
        scores = score_padded(network, table, pad([holdout.train[u] for u in chunk], max_len, n_items))
        for row, user in enumerate(chunk):
            scores[row, holdout.train[user]] = -np.inf
        found.append(topk(scores, 10)[0])
    return mean_ndcg(np.vstack(found) if found else np.zeros((0, 10), np.int64), holdout.targets)


@dataclass(frozen=True)
class TrainSettings:
    """How to train: the model's hyperparameters that the loop reads."""

    epochs: int
    batch_size: int
    learning_rate: float
    id_dropout: float
    patience: int
    negatives: int


@dataclass
class TrainingJob:
    """One training phase, everything it needs (picklable, so a Ray job can carry it).

    `make_network` builds a fresh network (its initialisation draws from torch's seed); `evaluate`
    scores a network on the holdout (None: no holdout, train `epochs` epochs); `budget` (seconds
    from the phase's start) is checked between epochs: no epoch starts after it; `cutoff` (seconds,
    None for none) stops an epoch between two steps, after at least one step (locally; data-parallel
    workers check only `budget`, between epochs, where they agree); `phase` names the phase in the
    training log; `seed` is the model's (data-parallel workers seed torch with it plus their rank).
    """

    make_network: Callable[[], Network]
    text_vectors: np.ndarray
    sequences: list[np.ndarray]
    counts: np.ndarray
    settings: TrainSettings
    max_len: int
    evaluate: Callable[[Network], float] | None
    budget: float
    epochs: int
    phase: str
    seed: int
    cutoff: float | None = None


@dataclass
class TrainResult:
    """The trained network (the best epoch's where there was a holdout), the best epoch (the epochs
    run without a holdout), the curve (one row per epoch), how many workers trained it and why the
    phase stopped (`STOPS`; a phase the time budget cut depends on the machine's speed)."""

    network: Network
    best_epoch: int
    curve: list[dict[str, Any]] = field(default_factory=list)
    workers: int = 1
    stopped: str = "epochs"


#: Why a training phase stopped: its epochs ran out, the holdout's patience did, or the time budget.
STOPS = ("epochs", "patience", "time budget")


def epoch_seconds(curve: list[dict[str, Any]]) -> float:
    """Seconds one whole epoch of a phase took on average, its holdout scoring apart (from a part
    of an epoch where the cutoff stopped the first)."""
    whole = [row["seconds"] for row in curve if "share of the epoch" not in row]
    if whole:
        return float(np.mean(whole))
    return max((row["seconds"] / max(row["share of the epoch"], 1e-3) for row in curve), default=0.0)


def positions(sequences: list[np.ndarray]) -> int:
    """How many next-item targets the histories hold (what an epoch's cost grows with)."""
    return sum(max(len(sequence) - 1, 0) for sequence in sequences)


def train_network(
    job: TrainingJob, rng: np.random.Generator, *, world: World | None = None, progress: bool = False
) -> TrainResult:
    """Train a new network.

    With a `world`, each worker takes every size-th window of the same shuffled order, in batches of
    ``batch_size / size``, so one step sees about ``batch_size`` windows as a local step does."""
    steps = _Steps(job, rng, world)
    network = steps.network
    best = _Best(job.settings.patience)
    started = time.perf_counter()
    cutoff = None if job.cutoff is None or world is not None else started + job.cutoff
    curve: list[dict[str, Any]] = []
    stopped = STOPS[0]
    with Progress(disable=not progress, transient=True) as bar, deterministic():
        task = bar.add_task(f"sequential ({job.phase})", total=job.epochs)
        for epoch in range(1, job.epochs + 1):
            epoch_started = time.perf_counter()
            loss, share = steps.epoch(cutoff)
            row: dict[str, Any] = {"epoch": epoch, "loss": loss, "seconds": time.perf_counter() - epoch_started}
            curve.append(row)
            if share < 1.0:  # the cutoff stopped it part way: not a whole epoch, and not judged
                row["share of the epoch"] = round(share, 4)
                logger.warning("sequential: time budget reached %.0f%% into epoch %d", 100 * share, epoch)
                stopped = STOPS[2]
                break
            description = f"sequential ({job.phase}) · loss {loss:.4f}"
            stop = False
            if job.evaluate is not None:
                score = job.evaluate(network)
                row["holdout ndcg@10"] = score
                description += f" · holdout ndcg@10 {score:.4f}"
                logger.info("sequential epoch %d: holdout ndcg@10 %.4f", epoch, score)
                stop = best.update(score, epoch, network)
            bar.update(task, advance=1, description=description)
            if _agreed(stop, world):
                stopped = STOPS[1]
                break
            if epoch < job.epochs and _agreed(time.perf_counter() - started > job.budget, world):
                logger.warning("sequential: time budget reached after %d epochs", epoch)
                stopped = STOPS[2]
                break
    if job.evaluate is None:
        return TrainResult(network, len(curve), curve, stopped=stopped)
    if best.state and best.epoch < len(curve):
        # the blend is chosen with the network of the best epoch, not the one patience stopped at
        network.load_state_dict(best.state)
    return TrainResult(network, best.epoch, curve, stopped=stopped)


def _agreed(flag: bool, world: World | None) -> bool:
    """`flag` here, or true on every worker when true on one."""
    return flag if world is None else world.agree(flag)


class _Best:
    """Early stopping: the best holdout score so far, its epoch and weights, and the patience left."""

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.score, self.epoch, self.since = -1.0, 1, 0
        self.state: dict[str, torch.Tensor] = {}

    def update(self, score: float, epoch: int, network: Network) -> bool:
        """Take one epoch's score; true when patience has run out."""
        if score > self.score:
            self.score, self.epoch, self.since = score, epoch, 0
            self.state = {key: value.detach().clone() for key, value in network.state_dict().items()}
            return False
        self.since += 1
        return self.since >= self.patience


class _Steps:
    """The steps of one training phase: a new network, its optimisers and the training windows; a
    full softmax over the items that occur in training, or a sampled one."""

    def __init__(self, job: TrainingJob, rng: np.random.Generator, world: World | None) -> None:
        settings = job.settings
        self.rng, self.world, self.id_dropout = rng, world, settings.id_dropout
        self.network = network = job.make_network()
        self.n_items = n_items = network.pad
        self.negatives = negatives_for(settings.negatives, n_items)
        self.sampled = bool(self.negatives) and self.negatives < int((job.counts > 0).sum())
        # Sampled steps touch few ID rows: a sparse gradient and lazy Adam keep them from updating
        # the whole table (a dense Adam step over a million-row table costs more than the rest).
        # Data-parallel training keeps dense gradients, which DistributedDataParallel all-reduces.
        self.sparse_ids = self.sampled and world is None
        self.optimizers = _optimizers(network, settings.learning_rate, self.sparse_ids)
        self.text = torch.from_numpy(job.text_vectors)
        counts = job.counts
        self.log_q = torch.from_numpy(np.log((counts + 1.0) / (counts.sum() + len(counts))).astype(np.float32))
        self.windows = torch.from_numpy(windows(job.sequences, job.max_len, n_items))
        self.trained_items = torch.from_numpy(np.flatnonzero(counts > 0))
        # a full softmax runs over the items that occur in training, in `trained_items` order: an item
        # that is never a target would otherwise be pushed down as a negative in every step (cold items)
        self.trained_position = torch.full((n_items + 1,), -1, dtype=torch.long)
        self.trained_position[self.trained_items] = torch.arange(len(self.trained_items))
        self.step = None if world is None else world.wrap(TrainStep(network, self.text))
        self.batch_size = settings.batch_size if world is None else max(1, -(-settings.batch_size // world.size))

    def epoch(self, cutoff: float | None = None) -> tuple[float, float]:
        """One pass over the windows in a new shuffled order, stopped between two steps once the
        clock (`time.perf_counter`) passes `cutoff`, after one step at least; returns the mean loss
        and the share of the windows it went through (1.0 for a whole epoch)."""
        self.network.train()
        order = torch.from_numpy(self.rng.permutation(len(self.windows)))
        if self.world is not None:
            order = order[self.world.rank :: self.world.size]
        total, steps = 0.0, 0
        for start in range(0, len(order), self.batch_size):
            if steps and cutoff is not None and time.perf_counter() > cutoff:
                return total / steps, start / len(order)
            loss = self.loss(self.windows[order[start : start + self.batch_size]])
            for optimizer in self.optimizers:
                optimizer.zero_grad()
            loss.backward()
            for optimizer in self.optimizers:
                optimizer.step()
            total, steps = total + loss.detach().item(), steps + 1
        return total / max(steps, 1), 1.0

    def loss(self, batch: torch.Tensor) -> torch.Tensor:
        network, text = self.network, self.text
        if self.sampled:
            picks = self.trained_items[torch.from_numpy(self.rng.integers(0, len(self.trained_items), self.negatives))]
            logits, labels = sampled_logits(
                network,
                text,
                batch,
                picks,
                self.log_q,
                id_dropout=self.id_dropout,
                sparse=self.sparse_ids,
                step=self.step,
            )
        else:
            pad = self.n_items
            inputs, targets = batch[:, :-1], batch[:, 1:]
            mask = (targets != pad) & (inputs != pad)
            keep = (torch.rand(pad) >= self.id_dropout).float()
            if self.step is None:
                table = network.item_table(text, keep)
                hidden = network(inputs, table)
            else:
                hidden, table = self.step(inputs, keep)
            hidden, targets = hidden[mask], targets[mask]
            logits, labels = hidden @ table[self.trained_items].T, self.trained_position[targets]
        return nn.functional.cross_entropy(logits, labels)


def _optimizers(network: Network, learning_rate: float, sparse_ids: bool) -> list[torch.optim.Optimizer]:
    if not sparse_ids:
        return [torch.optim.Adam(network.parameters(), lr=learning_rate)]
    others = [p for name, p in network.named_parameters() if name != "item_ids.weight"]
    return [
        torch.optim.Adam(others, lr=learning_rate),
        torch.optim.SparseAdam([network.item_ids.weight], lr=learning_rate),
    ]
