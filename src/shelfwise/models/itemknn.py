"""ItemKNN: item-to-item cosine similarity with shrinkage, pruned to each item's nearest neighbours."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from shelfwise.data.dataset import Dataset
from shelfwise.models.base import Param, Recommender, register


@register
class ItemKNN(Recommender):
    """score(u, j) = Σ_{i ∈ history(u)} sim(i, j), sim = co-count / (√n_i √n_j + shrink), top
    `neighbours` per item kept."""

    name = "itemknn"
    params: ClassVar[dict[str, Param]] = {
        "neighbours": Param("most similar items kept per item", int, 1, 100_000),
        "shrink": Param("added to the similarity's denominator: pulls rare co-occurrences towards 0", float, 0, 1e9),
        "block_size": Param("items whose similarities are computed at once (memory, not results)", int, 1, 1_000_000),
    }
    tuning_grid = (
        {"neighbours": 100, "shrink": 10.0},
        {"neighbours": 50, "shrink": 0.0},
        {"neighbours": 200, "shrink": 10.0},
        {"neighbours": 500, "shrink": 10.0},
        {"neighbours": 100, "shrink": 100.0},
        {"neighbours": 500, "shrink": 100.0},
    )

    def __init__(self, *, neighbours: int = 100, shrink: float = 10.0, block_size: int = 1024) -> None:
        self.neighbours = neighbours
        self.shrink = shrink
        self.block_size = block_size

    def _fit(self, dataset: Dataset, *, progress: bool) -> None:
        matrix = self.user_items_.astype(np.float32)
        item_user = matrix.T.tocsr()
        counts = np.asarray(matrix.sum(axis=0)).ravel()
        roots = np.sqrt(counts)
        n_items = self.n_items_
        keep = min(self.neighbours, max(n_items - 1, 1))
        rows, cols, vals = [], [], []
        for start in range(0, n_items, self.block_size):
            stop = min(start + self.block_size, n_items)
            co = (item_user[start:stop] @ matrix).toarray()
            sim = co / (roots[start:stop, None] * roots[None, :] + self.shrink + 1e-9)
            sim[np.arange(stop - start), np.arange(start, stop)] = 0.0
            if keep < n_items:
                top = np.argpartition(-sim, keep - 1, axis=1)[:, :keep]
            else:
                top = np.tile(np.arange(n_items), (stop - start, 1))
            values = np.take_along_axis(sim, top, axis=1)
            nonzero = values > 0
            rows.append(np.repeat(np.arange(start, stop), nonzero.sum(axis=1)))
            cols.append(top[nonzero])
            vals.append(values[nonzero])
        # similarity[i, j]: how much having i suggests j
        self.similarity_ = sp.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
            shape=(n_items, n_items),
            dtype=np.float32,
        )

    def _score(self, users: np.ndarray, user_items: sp.csr_matrix) -> np.ndarray:
        return (user_items @ self.similarity_).toarray()

    def _item_similarity(self, items: np.ndarray) -> np.ndarray:
        return self.similarity_[items].toarray()

    def _state(self) -> dict[str, np.ndarray]:
        sim = self.similarity_
        return {"sim_data": sim.data, "sim_indices": sim.indices, "sim_indptr": sim.indptr}

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        self.similarity_ = sp.csr_matrix(
            (state["sim_data"], state["sim_indices"], state["sim_indptr"]),
            shape=(self.n_items_, self.n_items_),
        )
