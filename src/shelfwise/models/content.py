"""ContentKNN: shoppers and items compared through the language model's text vectors.

A shopper's vector is the recency-weighted mean of the text vectors of the items in their history;
every item is scored by cosine similarity to it. Items need only text, so items nobody has taken yet
(cold items) are ranked like any other.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from shelfwise.data.dataset import Dataset
from shelfwise.models.base import Param, Recommender, _without_row, register
from shelfwise.text.encoder import BACKENDS, DEFAULT_ENCODER, create_encoder
from shelfwise.text.item_text import DEFAULT_TEMPLATE, ItemTextTemplate
from shelfwise.text.pipeline import encode_items


def recency_weights(sequences: list[np.ndarray], n_items: int, *, recency: float, max_history: int) -> sp.csr_matrix:
    """Per sequence, a weight for each distinct item: recency ** (number of distinct items taken later),
    over the `max_history` most recent distinct items."""
    rows, cols, vals = [], [], []
    for row, sequence in enumerate(sequences):
        if len(sequence) == 0:
            continue
        last_seen = list(dict.fromkeys(np.asarray(sequence)[::-1].tolist()))[:max_history]  # most recent first
        rows.append(np.full(len(last_seen), row))
        cols.append(np.asarray(last_seen))
        vals.append(recency ** np.arange(len(last_seen), dtype=np.float64))
    if not rows:
        return sp.csr_matrix((len(sequences), n_items), dtype=np.float32)
    return sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(len(sequences), n_items),
        dtype=np.float32,
    )


def profile_vectors(weights: sp.csr_matrix, item_vectors: np.ndarray) -> np.ndarray:
    """L2-normalised weighted sums of item vectors, one per row of `weights` (zero for an empty row)."""
    vectors = np.asarray(weights @ item_vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return vectors / norms


#: The one text profile of a shopper (the sequential model's text part, and the engine's score for
#: items its model does not know): the latest this many distinct items, each weighing `PROFILE_RECENCY`
#: ** (distinct items taken after it).
PROFILE_HISTORY = 50
PROFILE_RECENCY = 0.8


def text_profiles(sequences: list[np.ndarray], item_vectors: np.ndarray) -> np.ndarray:
    """The shoppers' text profiles (one L2-normalised row per history; zero for an empty one)."""
    weights = recency_weights(sequences, len(item_vectors), recency=PROFILE_RECENCY, max_history=PROFILE_HISTORY)
    return profile_vectors(weights, item_vectors)


def text_profile(sequence: np.ndarray, item_vectors: np.ndarray) -> np.ndarray:
    """One history's text profile, as `text_profiles` computes it, from the vectors of its latest
    distinct items alone (no matrix over the whole catalog: the engine asks once per answer)."""
    last_seen = list(dict.fromkeys(np.asarray(sequence)[::-1].tolist()))[:PROFILE_HISTORY]
    if not last_seen:
        return np.zeros(item_vectors.shape[1], dtype=np.float32)
    weights = (PROFILE_RECENCY ** np.arange(len(last_seen), dtype=np.float64)).astype(np.float32)
    vector = weights @ item_vectors[np.asarray(last_seen)]
    norm = np.linalg.norm(vector)
    return (vector / norm if norm > 0 else vector).astype(np.float32)


def text_profile_scores(sequences: list[np.ndarray], item_vectors: np.ndarray) -> np.ndarray:
    """Every item's cosine to each history's text profile (histories × items)."""
    return text_profiles(sequences, item_vectors) @ item_vectors.T


@register
class ContentKNN(Recommender):
    """score(u, j) = cos(Σ_i w_ui · v_i, v_j), with w_ui = `recency` ** (distinct items taken after i).

    Args:
        encoder: encoder spec (see `shelfwise.text.create_encoder`).
        recency: decay per later item; 1.0 weighs the whole history equally.
        max_history: only the most recent this many distinct items form the shopper's vector.
        template: item text template.
        cache_dir: embedding cache folder (default: the settings' cache).
        backend, max_seq_length: encoder options (see `SentenceTransformerEncoder`).
    """

    name = "content"
    params: ClassVar[dict[str, Param]] = {
        "encoder": Param("sentence encoder: 'default' (all-MiniLM-L6-v2), a model name or a folder", str),
        "recency": Param("decay per later item; 1.0 weighs the whole history equally", float, 0.0, 1.0),
        "max_history": Param("only the most recent this many distinct items form the shopper's vector", int, 1, 1e6),
        "template": Param("how an item's fields become the text encoded (see ItemTextTemplate)", str),
        "cache_dir": Param("embedding cache folder (null: the settings' cache)", str, optional=True),
        "backend": Param("encoder runtime: fp32, or int8 linear layers (faster, close)", str, choices=BACKENDS),
        "max_seq_length": Param("encoder tokens read per item (null: the model's own)", int, 1, 8192, optional=True),
    }
    tuning_grid = ({"recency": 0.8}, {"recency": 1.0}, {"recency": 0.95}, {"recency": 0.5})

    def __init__(
        self,
        *,
        encoder: str = DEFAULT_ENCODER,
        recency: float = 0.8,
        max_history: int = 200,
        template: str = DEFAULT_TEMPLATE,
        cache_dir: str | None = None,
        backend: str = "torch",
        max_seq_length: int | None = None,
    ) -> None:
        self.encoder = encoder
        self.recency = recency
        self.max_history = max_history
        self.template = template
        self.cache_dir = cache_dir
        self.backend = backend
        self.max_seq_length = max_seq_length

    def _validate_params(self) -> None:
        super()._validate_params()
        ItemTextTemplate(self.template)

    def _fit(self, dataset: Dataset, *, progress: bool) -> None:
        options = (
            {}
            if self.encoder.startswith("openai:")
            else {
                "backend": self.backend,
                "max_seq_length": self.max_seq_length,
            }
        )
        result = encode_items(
            dataset.items,
            create_encoder(self.encoder, **options),
            template=ItemTextTemplate(self.template),
            cache_dir=self.cache_dir,
            progress=progress,
        )
        self.item_vectors_ = result.vectors
        self.profile_ = recency_weights(
            dataset.sequences(), self.n_items_, recency=self.recency, max_history=self.max_history
        )

    def _history_rows(self, users: np.ndarray) -> sp.csr_matrix:
        return self.profile_[users]

    def user_vectors(self, user_items: sp.csr_matrix) -> np.ndarray:
        """Normalised shopper vectors from weighted history rows (zero for an empty history)."""
        return profile_vectors(user_items, self.item_vectors_)

    def _score(self, users: np.ndarray, user_items: sp.csr_matrix) -> np.ndarray:
        return self.user_vectors(user_items) @ self.item_vectors_.T

    def item_vectors(self) -> np.ndarray:
        return self.item_vectors_

    def score_histories(self, histories: list[np.ndarray]) -> np.ndarray:
        return self.query_vectors(histories) @ self.item_vectors_.T

    def scoring_vectors(self) -> np.ndarray:
        return self.item_vectors_

    def text_item_vectors(self, text_vectors: np.ndarray) -> np.ndarray | None:
        """An item's scoring vector is its (normalised) text vector, seen in training or not."""
        self._require_fitted()
        if text_vectors.shape[1] != self.item_vectors_.shape[1]:
            return None
        norms = np.linalg.norm(text_vectors, axis=1, keepdims=True)
        return (text_vectors / np.maximum(norms, 1e-12)).astype(np.float32)

    def query_vectors(self, histories: list[np.ndarray]) -> np.ndarray:
        self._require_fitted()
        self._rows_of(histories)  # range check
        weights = recency_weights(
            [np.asarray(h, dtype=np.int64) for h in histories],
            self.n_items_,
            recency=self.recency,
            max_history=self.max_history,
        )
        return self.user_vectors(weights)

    def _forget_user_state(self, user: int) -> None:
        self.profile_ = _without_row(self.profile_, user)

    def _state(self) -> dict[str, np.ndarray]:
        profile = self.profile_
        return {
            "item_vectors": self.item_vectors_,
            "profile_data": profile.data,
            "profile_indices": profile.indices,
            "profile_indptr": profile.indptr,
        }

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        self.item_vectors_ = state["item_vectors"]
        self.profile_ = sp.csr_matrix(
            (state["profile_data"], state["profile_indices"], state["profile_indptr"]),
            shape=(self.n_users_, self.n_items_),
        )
