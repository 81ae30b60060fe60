"""Popularity: the number of distinct users who took each item (PROTOCOLS.md rule 6)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from shelfwise.data.dataset import Dataset
from shelfwise.models.base import Recommender, register


@register
class Popularity(Recommender):
    """Score = distinct users per item in the training data; ties go to the smaller item id (as a
    string), which is the smaller index because `Dataset` numbers items in id order."""

    name = "popularity"

    def __init__(self) -> None:
        pass

    def _fit(self, dataset: Dataset, *, progress: bool) -> None:
        self.counts_ = np.asarray(self.user_items_.sum(axis=0)).ravel().astype(np.float64)

    def _score(self, users: np.ndarray, user_items: sp.csr_matrix) -> np.ndarray:
        return np.tile(self.counts_, (len(users), 1))

    def _item_similarity(self, items: np.ndarray) -> np.ndarray:
        return np.tile(self.counts_, (len(items), 1))

    def _state(self) -> dict[str, np.ndarray]:
        return {"counts": self.counts_}

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        self.counts_ = state["counts"]
