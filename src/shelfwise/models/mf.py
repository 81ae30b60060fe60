"""`mf`: the classic embedding model. User and item tables, dot product, sigmoid, binary
cross-entropy against sampled negatives, Adam (torch)."""

from __future__ import annotations

import time
from typing import ClassVar

import numpy as np
import scipy.sparse as sp
import torch
from rich.progress import Progress

from shelfwise.data.dataset import Dataset
from shelfwise.models.base import Param, Recommender, register
from shelfwise.models.factorization import cached_gram, fold_in_factors


@register
class MF(Recommender):
    """Logistic matrix factorisation with item biases, trained on (user, positive) pairs and
    `negatives` uniformly sampled items per positive."""

    name = "mf"
    params: ClassVar[dict[str, Param]] = {
        "factors": Param("length of the user and item vectors", int, 1, 4096),
        "epochs": Param("passes over the positive pairs", int, 1, 10_000),
        "learning_rate": Param("Adam's step size", float, 1e-8, 10.0),
        "weight_decay": Param("L2 penalty on the vectors and biases", float, 0.0, 10.0),
        "negatives": Param("uniformly sampled items per positive pair", int, 1, 1000),
        "batch_size": Param("positive pairs per step", int, 1, 10_000_000),
        "seed": Param("random seed: the same seed and data give the same model", int, 0, 2**32 - 1),
    }
    item_factors_: np.ndarray
    _gram_cache: tuple[np.ndarray, np.ndarray] | None = None  # see `cached_gram`
    tuning_grid = (
        {"factors": 64, "learning_rate": 0.005, "weight_decay": 1e-5},
        {"factors": 64, "learning_rate": 0.005, "weight_decay": 1e-4},
        {"factors": 128, "learning_rate": 0.002, "weight_decay": 1e-5},
        {"factors": 32, "learning_rate": 0.01, "weight_decay": 1e-5},
    )

    def __init__(
        self,
        *,
        factors: int = 64,
        epochs: int = 20,
        learning_rate: float = 0.005,
        weight_decay: float = 1e-5,
        negatives: int = 4,
        batch_size: int = 4096,
        seed: int = 42,
    ) -> None:
        self.factors = factors
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.negatives = negatives
        self.batch_size = batch_size
        self.seed = seed

    def _fit(self, dataset: Dataset, *, progress: bool) -> None:
        generator = torch.Generator().manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        coo = self.user_items_.tocoo()
        users = torch.from_numpy(coo.row.astype(np.int64))
        items = torch.from_numpy(coo.col.astype(np.int64))
        user_table = torch.nn.Embedding(self.n_users_, self.factors)
        item_table = torch.nn.Embedding(self.n_items_, self.factors)
        item_bias = torch.nn.Embedding(self.n_items_, 1)
        for table in (user_table, item_table):
            torch.nn.init.normal_(table.weight, std=0.1, generator=generator)
        torch.nn.init.zeros_(item_bias.weight)
        parameters = [*user_table.parameters(), *item_table.parameters(), *item_bias.parameters()]
        optimizer = torch.optim.Adam(parameters, lr=self.learning_rate, weight_decay=self.weight_decay)
        loss_fn = torch.nn.BCEWithLogitsLoss()
        n_pairs = len(users)
        with Progress(disable=not progress, transient=True) as bar:
            task = bar.add_task("mf", total=self.epochs)
            curve = []
            for epoch in range(1, self.epochs + 1):
                epoch_started, total_loss, steps = time.perf_counter(), 0.0, 0
                order = torch.from_numpy(rng.permutation(n_pairs))
                for start in range(0, n_pairs, self.batch_size):
                    batch = order[start : start + self.batch_size]
                    batch_users = users[batch]
                    negative_items = torch.from_numpy(rng.integers(0, self.n_items_, size=(len(batch), self.negatives)))
                    all_items = torch.cat([items[batch, None], negative_items], dim=1)
                    labels = torch.zeros_like(all_items, dtype=torch.float32)
                    labels[:, 0] = 1.0
                    logits = (user_table(batch_users)[:, None, :] * item_table(all_items)).sum(-1)
                    logits = logits + item_bias(all_items).squeeze(-1)
                    loss = loss_fn(logits, labels)
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    total_loss, steps = total_loss + loss.detach().item(), steps + 1
                curve.append(
                    {"epoch": epoch, "loss": total_loss / max(steps, 1), "seconds": time.perf_counter() - epoch_started}
                )
                bar.update(task, advance=1, description=f"mf · loss {curve[-1]['loss']:.4f}")
        self.training_log_ = {"phases": [{"name": "fit", "epochs": curve}], "best_epoch": None}
        self.user_factors_ = user_table.weight.detach().numpy().copy()
        self.item_factors_ = item_table.weight.detach().numpy().copy()
        self.item_bias_ = item_bias.weight.detach().numpy().ravel().copy()

    def _score(self, users: np.ndarray, user_items: sp.csr_matrix) -> np.ndarray:
        return self.user_factors_[users] @ self.item_factors_.T + self.item_bias_[None, :]

    def item_vectors(self) -> np.ndarray:
        return self.item_factors_

    def score_histories(self, histories: list[np.ndarray]) -> np.ndarray:
        """Fold each history in (a ridge solve against the fixed item factors), then score."""
        return self.query_vectors(histories) @ self.scoring_vectors().T

    def scoring_vectors(self) -> np.ndarray:
        """Item factors with the bias as one more dimension (the query has a 1 there)."""
        cached = getattr(self, "_scoring_cache", None)
        if cached is None or cached[0] is not self.item_factors_:
            vectors = np.hstack([self.item_factors_, self.item_bias_[:, None]]).astype(np.float32)
            cached = self._scoring_cache = (self.item_factors_, vectors)
        return cached[1]

    def query_vectors(self, histories: list[np.ndarray]) -> np.ndarray:
        self._require_fitted()
        users = fold_in_factors(
            self._distinct_items(histories), self.item_factors_, alpha=1.0, regularization=1.0, gram=cached_gram(self)
        )
        return np.hstack([users, np.ones((len(users), 1), dtype=np.float32)])

    def _forget_user_state(self, user: int) -> None:
        self.user_factors_ = self.user_factors_.copy()
        self.user_factors_[user] = 0.0

    def _state(self) -> dict[str, np.ndarray]:
        return {"user_factors": self.user_factors_, "item_factors": self.item_factors_, "item_bias": self.item_bias_}

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        self.user_factors_ = state["user_factors"]
        self.item_factors_ = state["item_factors"]
        self.item_bias_ = state["item_bias"]
