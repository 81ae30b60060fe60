"""Matrix factorisation through the `implicit` library: ALS (Hu, Koren, Volinsky 2008) and BPR."""

from __future__ import annotations

import logging
from typing import ClassVar, Protocol

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from shelfwise.data.dataset import Dataset
from shelfwise.models.base import Param, Recommender, register

logger = logging.getLogger(__name__)


def fold_in_factors(
    rows: sp.csr_matrix | list[np.ndarray],
    item_factors: np.ndarray,
    *,
    alpha: float,
    regularization: float,
    gram: np.ndarray | None = None,
) -> np.ndarray:
    """User factors for binary history rows against fixed item factors: the implicit-feedback ALS
    user step ``(YᵀY + alpha·Y_hᵀY_h + λI)⁻¹ (1 + alpha)·Y_hᵀ1`` (Hu, Koren, Volinsky 2008) per row.
    `gram` is ``YᵀY`` when the caller keeps it (it costs a pass over every item)."""
    factors = item_factors
    regularization = max(float(regularization), 1e-3)
    if gram is None:
        gram = item_gram(item_factors)
    system_base = gram + regularization * np.eye(factors.shape[1])
    if isinstance(rows, sp.csr_matrix):
        rows = [rows.indices[rows.indptr[row] : rows.indptr[row + 1]] for row in range(rows.shape[0])]
    out = np.zeros((len(rows), factors.shape[1]), dtype=np.float64)
    for row, items in enumerate(rows):
        if len(items) == 0:
            continue
        y = factors[items].astype(np.float64)
        out[row] = np.linalg.solve(system_base + alpha * (y.T @ y), (1.0 + alpha) * y.sum(axis=0))
    return out.astype(np.float32)


def item_gram(item_factors: np.ndarray) -> np.ndarray:
    """``YᵀY`` in float64."""
    factors = item_factors.astype(np.float64)
    return factors.T @ factors


class HasItemFactors(Protocol):
    """A model with an item factor table and room to cache its Gram matrix."""

    item_factors_: np.ndarray
    _gram_cache: tuple[np.ndarray, np.ndarray] | None


def cached_gram(model: HasItemFactors) -> np.ndarray:
    """``YᵀY`` of a model's ``item_factors_``, computed once per fitted state (serving folds in per
    request, and the Gram matrix is a pass over every item)."""
    cached = model._gram_cache
    if cached is None or cached[0] is not model.item_factors_:
        cached = (model.item_factors_, item_gram(model.item_factors_))
        model._gram_cache = cached
    return cached[1]


class _FactorModel(Recommender):
    """Shared scoring and storage for models with user and item factor tables."""

    regularization: float
    user_factors_: np.ndarray
    item_factors_: np.ndarray
    #: (the item factors it was computed from, their Gram matrix): see `cached_gram`
    _gram_cache: tuple[np.ndarray, np.ndarray] | None = None

    def _weighted(self, dataset: Dataset) -> sp.csr_matrix:
        """Event weights summed per pair and scaled so that one purchase counts 1."""
        matrix = dataset.user_items().astype(np.float32)
        return (matrix / max(dataset.event_weights.get("purchase", 1.0), 1e-6)).tocsr()

    def _score(self, users: np.ndarray, user_items: sp.csr_matrix) -> np.ndarray:
        return self.user_factors_[users] @ self.item_factors_.T

    def item_vectors(self) -> np.ndarray:
        return self.item_factors_

    def score_histories(self, histories: list[np.ndarray]) -> np.ndarray:
        """Fold each history in: solve for its user factors against the fixed item factors."""
        return self.query_vectors(histories) @ self.item_factors_.T

    def scoring_vectors(self) -> np.ndarray:
        return self.item_factors_

    def query_vectors(self, histories: list[np.ndarray]) -> np.ndarray:
        self._require_fitted()
        return self.fold_in(self._distinct_items(histories))

    def fold_in(self, rows: sp.csr_matrix | list[np.ndarray]) -> np.ndarray:
        """User factors for history rows (the ALS user step; BPR uses alpha 1)."""
        return fold_in_factors(
            rows,
            self.item_factors_,
            alpha=float(getattr(self, "alpha", 1.0)),
            regularization=self.regularization,
            gram=cached_gram(self),
        )

    def _forget_user_state(self, user: int) -> None:
        self.user_factors_ = self.user_factors_.copy()
        self.user_factors_[user] = 0.0

    def _state(self) -> dict[str, np.ndarray]:
        return {"user_factors": self.user_factors_, "item_factors": self.item_factors_}

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        self.user_factors_ = state["user_factors"]
        self.item_factors_ = state["item_factors"]


@register
class ALS(_FactorModel):
    """Implicit-feedback ALS; confidence = 1 + alpha · weight."""

    name = "als"
    params: ClassVar[dict[str, Param]] = {
        "factors": Param("length of the user and item vectors", int, 1, 4096),
        "regularization": Param("L2 penalty on the vectors", float, 0.0, 1e6),
        "alpha": Param("confidence per unit of event weight: confidence = 1 + alpha · weight", float, 0.0, 1e6),
        "iterations": Param("alternating passes over users and items", int, 1, 1000),
        "seed": Param("random seed of the initial vectors", int, 0, 2**32 - 1),
    }
    # Covers the best regions found on the tuning splits of the four public data sets.
    tuning_grid = (
        {"factors": 64, "regularization": 10.0, "alpha": 2.0},
        {"factors": 64, "regularization": 10.0, "alpha": 5.0},
        {"factors": 64, "regularization": 10.0, "alpha": 1.0},
        {"factors": 128, "regularization": 10.0, "alpha": 2.0},
        {"factors": 256, "regularization": 50.0, "alpha": 5.0},
        {"factors": 64, "regularization": 50.0, "alpha": 20.0},
        {"factors": 128, "regularization": 50.0, "alpha": 20.0},
        {"factors": 32, "regularization": 1.0, "alpha": 5.0},
    )

    def __init__(
        self,
        *,
        factors: int = 128,
        regularization: float = 0.1,
        alpha: float = 10.0,
        iterations: int = 15,
        seed: int = 42,
    ) -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.seed = seed

    def _fit(self, dataset: Dataset, *, progress: bool) -> None:
        from implicit.cpu.als import AlternatingLeastSquares

        with threadpool_limits(limits=1, user_api="blas"):
            model = AlternatingLeastSquares(
                factors=self.factors,
                regularization=self.regularization,
                alpha=self.alpha,
                iterations=self.iterations,
                random_state=self.seed,
            )
            model.fit(self._weighted(dataset), show_progress=progress)
        self.user_factors_ = np.asarray(model.user_factors, dtype=np.float32)
        self.item_factors_ = np.asarray(model.item_factors, dtype=np.float32)


@register
class BPR(_FactorModel):
    """Bayesian Personalised Ranking with SGD (implicit's implementation)."""

    name = "bpr"
    params: ClassVar[dict[str, Param]] = {
        "factors": Param("length of the user and item vectors", int, 1, 4096),
        "learning_rate": Param("SGD step size", float, 1e-8, 10.0),
        "regularization": Param("L2 penalty on the vectors", float, 0.0, 1e6),
        "iterations": Param("passes over the positive pairs", int, 1, 10_000),
        "seed": Param("random seed", int, 0, 2**32 - 1),
    }
    tuning_grid = (
        {"factors": 64, "learning_rate": 0.05, "regularization": 0.01, "iterations": 100},
        {"factors": 128, "learning_rate": 0.05, "regularization": 0.01, "iterations": 100},
        {"factors": 64, "learning_rate": 0.01, "regularization": 0.01, "iterations": 200},
        {"factors": 64, "learning_rate": 0.05, "regularization": 0.001, "iterations": 100},
        {"factors": 64, "learning_rate": 0.01, "regularization": 0.1, "iterations": 100},
    )

    def __init__(
        self,
        *,
        factors: int = 64,
        learning_rate: float = 0.05,
        regularization: float = 0.01,
        iterations: int = 100,
        seed: int = 42,
    ) -> None:
        self.factors = factors
        self.learning_rate = learning_rate
        self.regularization = regularization
        self.iterations = iterations
        self.seed = seed

    def _fit(self, dataset: Dataset, *, progress: bool) -> None:
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        model = BayesianPersonalizedRanking(
            factors=self.factors,
            learning_rate=self.learning_rate,
            regularization=self.regularization,
            iterations=self.iterations,
            random_state=self.seed,
            num_threads=1,
        )
        model.fit(self.user_items_, show_progress=progress)
        self.user_factors_ = np.asarray(model.user_factors, dtype=np.float32)
        self.item_factors_ = np.asarray(model.item_factors, dtype=np.float32)
