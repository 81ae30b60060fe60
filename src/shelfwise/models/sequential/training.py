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

from shelfwise.models.sequential.histories import windows
from shelfwise.models.sequential.network import Network, TrainStep, deterministic, sampled_logits

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
    scores a network on the holdout (None: no holdout, train `epochs` epochs); `budget` is in
    seconds; `phase` names the phase in the training log; `seed` is the model's (data-parallel
    workers seed torch with it plus their rank).
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


@dataclass
class TrainResult:
    """The trained network (the best epoch's where there was a holdout), the best epoch (the epochs
    run without a holdout), the curve (one row per epoch) and how many workers trained it."""

    network: Network
    best_epoch: int
    curve: list[dict[str, Any]] = field(default_factory=list)
    workers: int = 1


def train_network(
    job: TrainingJob, rng: np.random.Generator, *, world: World | None = None, progress: bool = False
) -> TrainResult:
    """Train a new network.

    With a `world`, each worker takes every size-th window of the same shuffled order, in batches of
    ``batch_size / size``, so one step sees about ``batch_size`` windows as a local step does."""
    settings = job.settings
    network = job.make_network()
    n_items = network.pad
    negatives = negatives_for(settings.negatives, n_items)
    sampled = bool(negatives) and negatives < int((job.counts > 0).sum())
    # Sampled steps touch few ID rows: a sparse gradient and lazy Adam keep them from updating
    # the whole table (a dense Adam step over a million-row table costs more than the rest).
    # Data-parallel training keeps dense gradients, which DistributedDataParallel all-reduces.
    sparse_ids = sampled and world is None
    optimizers = _optimizers(network, settings.learning_rate, sparse_ids)
    text = torch.from_numpy(job.text_vectors)
    counts = job.counts
    log_q = torch.from_numpy(np.log((counts + 1.0) / (counts.sum() + len(counts))).astype(np.float32))
    batches = torch.from_numpy(windows(job.sequences, job.max_len, n_items))
    trained_items = torch.from_numpy(np.flatnonzero(counts > 0))
    # a full softmax runs over the items that occur in training, in `trained_items` order: an item
    # that is never a target would otherwise be pushed down as a negative in every step (cold items)
    trained_position = torch.full((n_items + 1,), -1, dtype=torch.long)
    trained_position[trained_items] = torch.arange(len(trained_items))
    started = time.perf_counter()
    best, best_epoch, since_best = -1.0, 1, 0
    best_state: dict[str, torch.Tensor] = {}
    limit = job.epochs
    curve: list[dict[str, Any]] = []
    step = None if world is None else world.wrap(TrainStep(network, text))
    batch_size = settings.batch_size if world is None else max(1, -(-settings.batch_size // world.size))

    def loss_of(batch: torch.Tensor) -> torch.Tensor:
        if sampled:
            picks = trained_items[torch.from_numpy(rng.integers(0, len(trained_items), negatives))]
            logits, labels = sampled_logits(
                network, text, batch, picks, log_q, id_dropout=settings.id_dropout, sparse=sparse_ids, step=step
            )
        else:
            inputs, targets = batch[:, :-1], batch[:, 1:]
            mask = (targets != n_items) & (inputs != n_items)
            keep = (torch.rand(n_items) >= settings.id_dropout).float()
            if step is None:
                table = network.item_table(text, keep)
                hidden = network(inputs, table)
            else:
                hidden, table = step(inputs, keep)
            hidden, targets = hidden[mask], targets[mask]
            logits, labels = hidden @ table[trained_items].T, trained_position[targets]
        return nn.functional.cross_entropy(logits, labels)

    with Progress(disable=not progress, transient=True) as bar, deterministic():
        task = bar.add_task(f"sequential ({job.phase})", total=limit)
        for epoch in range(1, limit + 1):
            epoch_started, total_loss, steps = time.perf_counter(), 0.0, 0
            network.train()
            order = torch.from_numpy(rng.permutation(len(batches)))
            if world is not None:
                order = order[world.rank :: world.size]
            for start in range(0, len(order), batch_size):
                loss = loss_of(batches[order[start : start + batch_size]])
                for optimizer in optimizers:
                    optimizer.zero_grad()
                loss.backward()
                for optimizer in optimizers:
                    optimizer.step()
                total_loss, steps = total_loss + loss.detach().item(), steps + 1
            row: dict[str, Any] = {
                "epoch": epoch,
                "loss": total_loss / max(steps, 1),
                "seconds": time.perf_counter() - epoch_started,
            }
            curve.append(row)
            description = f"sequential ({job.phase}) · loss {row['loss']:.4f}"
            stop = False
            if job.evaluate is not None:
                score = job.evaluate(network)
                row["holdout ndcg@10"] = score
                description += f" · holdout ndcg@10 {score:.4f}"
                logger.info("sequential epoch %d: holdout ndcg@10 %.4f", epoch, score)
                if score > best:
                    best, best_epoch, since_best = score, epoch, 0
                    best_state = {key: value.detach().clone() for key, value in network.state_dict().items()}
                else:
                    since_best += 1
                    stop = since_best >= settings.patience
            bar.update(task, advance=1, description=description)
            if world is not None:
                stop = world.agree(stop)
            if stop:
                break
            over_budget = time.perf_counter() - started > job.budget
            if world is not None:
                over_budget = world.agree(over_budget)
            if over_budget:
                logger.warning("sequential: time budget reached after %d epochs", epoch)
                break
    if job.evaluate is None:
        return TrainResult(network, limit, curve)
    if best_epoch < len(curve):
        # the blend is chosen with the network of the best epoch, not the one patience stopped at
        network.load_state_dict(best_state)
    return TrainResult(network, best_epoch, curve)


def _optimizers(network: Network, learning_rate: float, sparse_ids: bool) -> list[torch.optim.Optimizer]:
    if not sparse_ids:
        return [torch.optim.Adam(network.parameters(), lr=learning_rate)]
    others = [p for name, p in network.named_parameters() if name != "item_ids.weight"]
    return [
        torch.optim.Adam(others, lr=learning_rate),
        torch.optim.SparseAdam([network.item_ids.weight], lr=learning_rate),
    ]
