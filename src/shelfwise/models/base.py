"""The `Recommender` base class every model implements.

Models see integer indices only: users ``0..n_users-1`` and items ``0..n_items-1`` of the `Dataset`
they were fitted on. Arrays go in, ``(ids, scores)`` arrays come out, a batch of users at a time.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from shelfwise.data.dataset import Dataset
from shelfwise.errors import ConfigError, DataFormatError, NotFittedError
from shelfwise.models.arrays import read_arrays
from shelfwise.ranking import MAX_DEPTH, check_k, topk

logger = logging.getLogger(__name__)

MODEL_FORMAT_VERSION = 1
_REGISTRY: dict[str, type[Recommender]] = {}


def register(cls: type[Recommender]) -> type[Recommender]:
    """Class decorator: make a model loadable by its `name`."""
    _REGISTRY[cls.name] = cls
    return cls


def model_names() -> tuple[str, ...]:
    return tuple(sorted(_REGISTRY))


def get_model_class(name: str) -> type[Recommender]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"Unknown model {name!r}; valid models are {', '.join(model_names())}.") from None


def create_model(name: str, **params: Any) -> Recommender:
    """A model by name with the given hyperparameters (unknown names and parameters are rejected)."""
    model_cls = get_model_class(name)
    valid = [p for p in inspect.signature(model_cls.__init__).parameters if p != "self"]
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ConfigError(f"Model {name!r} has no parameter(s) {unknown}; valid parameters are {valid}.")
    model = model_cls(**params)
    model._validate_params()  # a bad value fails here, before any data is read
    return model


@dataclass(frozen=True)
class Param:
    """One hyperparameter as its model declares it: what it means, its type, and the values it may
    take (a closed range for numbers, `choices` for names). `Recommender.params` holds them; the
    fit checks every value against them and `shelfwise train --help-params` lists them, so neither
    can drift from the model's own signature (a test holds each model's declarations to it)."""

    help: str
    kind: type = float
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] | None = None
    optional: bool = False  # None is allowed too (the model then picks, as `help` says)

    def allowed(self) -> str:
        """The values it may take, in words."""
        if self.choices is not None:
            text = "one of " + ", ".join(repr(choice) for choice in self.choices)
        elif self.low is not None and self.high is not None:
            text = f"{self.kind.__name__} in [{self.low:g}, {self.high:g}]"
        else:
            text = self.kind.__name__
        return f"{text} or null" if self.optional else text

    def check(self, owner: str, name: str, value: Any) -> None:
        """Raise `ConfigError` naming the parameter and what it may be, unless `value` is allowed."""
        if value is None and self.optional:
            return
        if self.choices is not None:
            ok = value in self.choices
        elif self.kind in (int, float):
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            ok = number and (isinstance(value, self.kind) or self.kind is float)
            ok = ok and (self.low is None or value >= self.low) and (self.high is None or value <= self.high)
        else:
            ok = isinstance(value, self.kind)
        if not ok:
            raise ConfigError(
                f"The {name!r} parameter of {owner} must be {_article(self.allowed())}. Got {value!r} instead."
            )


def _article(text: str) -> str:
    return text if text.startswith("one of") else f"a {text}" if text[0] not in "aeiou" else f"an {text}"


def _without_row(matrix: sp.csr_matrix, row: int) -> sp.csr_matrix:
    keep = np.ones(matrix.shape[0], dtype=matrix.dtype)
    keep[row] = 0
    out = sp.csr_matrix(sp.diags(keep) @ matrix)
    out.eliminate_zeros()
    return out


class Recommender(ABC):
    """Base of every shelfwise model.

    Subclasses store hyperparameters in ``__init__`` (keyword-only, no validation there), learn in
    `_fit`, score in `_score`, and list their learned arrays in `_state` / `_set_state`. Learned
    attributes end in ``_``.

    Class attributes:
        name: registry name (``shelfwise evaluate --models NAME``).
        params: the hyperparameters' declarations (`Param`), checked before every fit.
        tuning_grid: hyperparameter sets tried on the tuning split; the first is the default.
    """

    name: ClassVar[str] = ""
    #: Every hyperparameter of ``__init__``: what it means and the values it may take.
    params: ClassVar[dict[str, Param]] = {}
    tuning_grid: ClassVar[tuple[dict[str, Any], ...]] = ({},)
    #: Parameters that change only how a fitted model scores, not what it learns: tuning tries each
    #: value on every configuration it has fitted (`rescored`) instead of fitting again.
    rescoring_grid: ClassVar[dict[str, tuple[Any, ...]]] = {}
    #: More of them, tried only where the tuning split ranks a few sampled candidates (P3).
    sampled_rescoring_grid: ClassVar[dict[str, tuple[Any, ...]]] = {}

    n_users_: int
    n_items_: int
    user_items_: sp.csr_matrix

    @classmethod
    def trial_differs(cls, params: dict[str, Any], dataset: Dataset) -> bool:
        """Whether fitting `params` on `dataset` can differ from the default configuration's fit.
        Tuning skips a trial that cannot (an option the data lacks what it needs for)."""
        return True

    # ------------------------------------------------------------------------------- parameters
    def get_params(self) -> dict[str, Any]:
        signature = inspect.signature(type(self).__init__)
        return {name: getattr(self, name) for name in signature.parameters if name != "self"}

    def set_params(self, **params: Any) -> Recommender:
        valid = self.get_params()
        for key, value in params.items():
            if key not in valid:
                raise ConfigError(
                    f"{type(self).__name__} has no parameter {key!r}; valid parameters are {sorted(valid)}."
                )
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"

    def _check_param(self, name: str, kind: type, low: float, high: float) -> None:
        Param("", kind, low, high).check(type(self).__name__, name, getattr(self, name))

    @classmethod
    def describe_params(cls) -> list[dict[str, Any]]:
        """Each hyperparameter: name, default, allowed values and meaning, in signature order."""
        signature = inspect.signature(cls.__init__).parameters
        return [
            {"name": name, "default": signature[name].default, "allowed": param.allowed(), "help": param.help}
            for name, param in sorted(cls.params.items(), key=lambda item: list(signature).index(item[0]))
        ]

    # ------------------------------------------------------------------------------- fitting
    def fit(self, dataset: Dataset, *, progress: bool = False) -> Recommender:
        """Learn from `dataset` (its interactions are all this model may see). Returns ``self``."""
        self._validate_params()
        self.n_users_ = dataset.n_users
        self.n_items_ = dataset.n_items
        self.user_items_ = dataset.user_items(binary=True)
        self.training_log_: dict[str, Any] = {}
        started = time.perf_counter()
        self._fit(dataset, progress=progress)
        self.fit_seconds_ = time.perf_counter() - started
        return self

    def _validate_params(self) -> None:
        """Check hyperparameters against `params` (raise `ConfigError` naming the parameter and what
        it may be); a model adds the checks that join two of them."""
        for name, param in self.params.items():
            param.check(type(self).__name__, name, getattr(self, name))

    @abstractmethod
    def _fit(self, dataset: Dataset, *, progress: bool) -> None: ...

    @abstractmethod
    def _score(self, users: np.ndarray, user_items: sp.csr_matrix) -> np.ndarray:
        """Dense scores (len(users) × n_items). `user_items` holds the rows of those users' histories."""

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "n_items_")

    def rescored(self, **params: Any) -> bool:
        """Apply scoring-only parameters (`rescoring_grid`) to this fitted model, as if it had been
        fitted with them. Returns False, changing nothing, where they do not apply to this fit."""
        return False

    def _require_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(f"{type(self).__name__} is not fitted yet; call fit() or load() first.")

    # ------------------------------------------------------------------------------- scoring
    def score(self, users: np.ndarray, user_items: sp.csr_matrix | None = None) -> np.ndarray:
        """Scores of every item for each user index; `user_items` rows override the fitted histories."""
        self._require_fitted()
        users = np.asarray(users, dtype=np.int64)
        rows = self._history_rows(users) if user_items is None else sp.csr_matrix(user_items)
        return np.asarray(self._score(users, rows), dtype=np.float64)

    def _history_rows(self, users: np.ndarray) -> sp.csr_matrix:
        """The fitted history rows handed to `_score` (a model may weight them, e.g. by recency)."""
        return self.user_items_[users]

    def score_histories(self, histories: list[np.ndarray]) -> np.ndarray:
        """Scores of every item after each history (item indices, oldest first), with no refit.

        This is how a fresh event reaches a shopper's list at once: the serving engine keeps each
        shopper's history and scores it here. The default scores the binary history rows; models
        whose user state is not a function of those rows (factor models, sequence models) override it.
        """
        self._require_fitted()
        rows = self._rows_of(histories)
        users = np.full(len(histories), -1, dtype=np.int64)
        return np.asarray(self._score(users, rows), dtype=np.float64)

    def _distinct_items(self, histories: list[np.ndarray]) -> list[np.ndarray]:
        """Each history's distinct item indices (range-checked), without building a matrix."""
        out = []
        for history in histories:
            items = np.unique(np.asarray(history, dtype=np.int64))
            if len(items) and (items[0] < 0 or items[-1] >= self.n_items_):
                raise ConfigError(f"History item indices must be in [0, {self.n_items_ - 1}].")
            out.append(items)
        return out

    def _rows_of(self, histories: list[np.ndarray]) -> sp.csr_matrix:
        """Binary history rows (n × n_items) of item-index lists; out-of-range indices are rejected."""
        lengths = [len(h) for h in histories]
        items = np.concatenate([np.asarray(h, dtype=np.int64) for h in histories]) if histories else np.zeros(0, int)
        if len(items) and (items.min() < 0 or items.max() >= self.n_items_):
            raise ConfigError(f"History item indices must be in [0, {self.n_items_ - 1}].")
        rows = np.repeat(np.arange(len(histories)), lengths)
        matrix = sp.csr_matrix((np.ones(len(items), np.float32), (rows, items)), shape=(len(histories), self.n_items_))
        matrix.sum_duplicates()
        matrix.data[:] = 1.0
        return matrix

    def scoring_vectors(self) -> np.ndarray | None:
        """Item vectors ``V`` such that ``score_histories(h) == query_vectors(h) @ V.T``, for models
        whose scores are inner products (the serving engine then retrieves with a vector index
        instead of scoring every item); None for the others."""
        return None

    def text_item_vectors(self, text_vectors: np.ndarray) -> np.ndarray | None:
        """Scoring vectors (as `scoring_vectors`) for items the model never saw, from their text
        vectors alone; None where the model has no text side (the serving engine then places such
        items by their nearest trained items in text)."""
        return None

    def query_vectors(self, histories: list[np.ndarray]) -> np.ndarray:
        """The query vector of each history (see `scoring_vectors`)."""
        raise NotImplementedError(f"{type(self).__name__} scores are not inner products of vectors")

    def similarity_scores(self, items: np.ndarray) -> np.ndarray:
        """Similarity of each given item index to every item (the model's own notion of "similar")."""
        self._require_fitted()
        return np.asarray(self._item_similarity(np.atleast_1d(np.asarray(items, dtype=np.int64))), dtype=np.float64)

    def forget_user(self, user: int) -> None:
        """Erase everything this model keeps about one user index (a privacy deletion)."""
        self._require_fitted()
        if not 0 <= user < self.n_users_:
            raise ConfigError(f"User index must be in [0, {self.n_users_ - 1}].")
        self.user_items_ = _without_row(self.user_items_, user)
        self._forget_user_state(user)

    def _forget_user_state(self, user: int) -> None:  # noqa: B027 - optional hook
        """Models that keep per-user state besides the history rows erase it here."""

    def recommend(
        self,
        users: np.ndarray | int,
        k: int = 10,
        *,
        user_items: sp.csr_matrix | None = None,
        filter_already_liked: bool = True,
        candidates: np.ndarray | None = None,
        batch_size: int = 512,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-`k` items for each user: ``(ids, scores)`` of shape (len(users), k), best first.

        Args:
            users: user indices (a single int gives 1-d arrays).
            user_items: history rows to score from instead of the fitted ones (same order as `users`).
            filter_already_liked: remove each user's history from its list.
            candidates: boolean mask over items; only these may be recommended.
        Missing slots (fewer than `k` allowed items) have id -1 and score -inf.
        """
        self._require_fitted()
        check_k(k, limit=MAX_DEPTH, name="The 'k' parameter of recommend")
        single = np.isscalar(users)
        users = np.atleast_1d(np.asarray(users, dtype=np.int64))
        if user_items is None and ((users < 0) | (users >= self.n_users_)).any():
            raise ConfigError(f"User indices must be in [0, {self.n_users_ - 1}].")
        history = self._history_rows(users) if user_items is None else sp.csr_matrix(user_items)
        if history.shape[0] != len(users):
            raise ConfigError(f"user_items has {history.shape[0]} rows for {len(users)} users.")
        if candidates is not None:
            candidates = np.asarray(candidates, dtype=bool)
            if candidates.shape != (self.n_items_,):
                raise ConfigError(f"candidates must be a boolean mask of length {self.n_items_}.")
        all_ids, all_scores = [], []
        for start in range(0, len(users), batch_size):
            batch = users[start : start + batch_size]
            rows = history[start : start + batch_size]
            scores = self.score(batch, rows)
            if candidates is not None:
                scores[:, ~candidates] = -np.inf
            if filter_already_liked:
                row_index = np.repeat(np.arange(rows.shape[0]), np.diff(rows.indptr))
                scores[row_index, rows.indices] = -np.inf
            ids, top = topk(scores, k)
            all_ids.append(ids)
            all_scores.append(top)
        ids = np.vstack(all_ids)
        top = np.vstack(all_scores)
        return (ids[0], top[0]) if single else (ids, top)

    def similar_items(self, items: np.ndarray | int, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The `k` items most similar to each item (the item itself excluded)."""
        self._require_fitted()
        single = np.isscalar(items)
        items = np.atleast_1d(np.asarray(items, dtype=np.int64))
        if ((items < 0) | (items >= self.n_items_)).any():
            raise ConfigError(f"Item indices must be in [0, {self.n_items_ - 1}].")
        scores = np.asarray(self._item_similarity(items), dtype=np.float64)
        scores[np.arange(len(items)), items] = -np.inf
        ids, top = topk(scores, k)
        return (ids[0], top[0]) if single else (ids, top)

    def _item_similarity(self, items: np.ndarray) -> np.ndarray:
        """Similarity of each given item to every item; default: cosine of `item_vectors()`."""
        unit = self._unit_item_vectors()
        return unit[items] @ unit.T

    def _unit_item_vectors(self) -> np.ndarray:
        """`item_vectors()` scaled to unit length, computed once per set of vectors (normalising a
        million rows on every "similar items" request cost more than the answer)."""
        vectors = self.item_vectors()
        cached = getattr(self, "_unit_vectors_cache", None)
        if cached is None or cached[0] is not vectors:
            norms = np.linalg.norm(vectors, axis=1)
            norms[norms == 0] = 1.0
            cached = (vectors, vectors / norms[:, None])
            self._unit_vectors_cache = cached
        return cached[1]

    def item_vectors(self) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} has no item vectors")

    # ------------------------------------------------------------------------------- storage
    @abstractmethod
    def _state(self) -> dict[str, np.ndarray]:
        """The learned arrays to save."""

    @abstractmethod
    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore learned arrays saved by `_state`."""

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``config.json`` and ``arrays.npz`` (no pickle) to the folder `path`."""
        self._require_fitted()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        history = self.user_items_
        arrays = {
            "history_indptr": history.indptr,
            "history_indices": history.indices,
            **{f"state_{key}": np.asarray(value) for key, value in self._state().items()},
        }
        tmp = path / f"arrays.{os.getpid()}.{threading.get_ident()}.tmp.npz"  # two writers never share it
        np.savez(tmp, **arrays)
        os.replace(tmp, path / "arrays.npz")
        config = {
            "format_version": MODEL_FORMAT_VERSION,
            "model": self.name,
            "params": self.get_params(),
            "n_users": self.n_users_,
            "n_items": self.n_items_,
        }
        (path / "config.json").write_text(json.dumps(config, indent=2))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Recommender:
        """Load a model folder written by `save` (any model class when called on the base)."""
        path = Path(path)
        config_file = path / "config.json"
        if not config_file.is_file():
            raise DataFormatError(f"{path} is not a saved model (no config.json).")
        config = json.loads(config_file.read_text())
        if config.get("format_version") != MODEL_FORMAT_VERSION:
            raise DataFormatError(f"{path}: unsupported model format version {config.get('format_version')}.")
        model_cls = get_model_class(config["model"])
        if cls is not Recommender and not issubclass(model_cls, cls):
            raise DataFormatError(f"{path} holds a {config['model']!r} model, not a {cls.name!r} model.")
        model = model_cls(**config["params"])
        # mapped, not read (`arrays.read_arrays`); row-major, whatever order they were saved in:
        # models read item rows (a Fortran-ordered matrix makes each row a strided read)
        data = {key: np.require(value, requirements="C") for key, value in read_arrays(path / "arrays.npz").items()}
        model.n_users_ = int(config["n_users"])
        model.n_items_ = int(config["n_items"])
        indices = data["history_indices"]
        model.user_items_ = sp.csr_matrix(
            (np.ones(len(indices), np.float32), indices, data["history_indptr"]),
            shape=(model.n_users_, model.n_items_),
        )
        model._set_state({key[6:]: value for key, value in data.items() if key.startswith("state_")})
        return model
