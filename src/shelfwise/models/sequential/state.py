"""The fitted state of the sequential model as named arrays (what `save` writes and `load` reads):
the network's weights, the blend's parts and weights, the cold policy, the text vectors and the
fitted histories."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
import torch

from shelfwise.models.sequential.blend import BlendParts, BlendWeights, popularity_scores
from shelfwise.models.sequential.cold import ColdPolicy
from shelfwise.models.sequential.histories import sequence_matrix

if TYPE_CHECKING:
    from shelfwise.models.sequential.model import SequentialRecommender


def fitted_state(model: SequentialRecommender) -> dict[str, np.ndarray]:
    """Every array a fitted `model` needs to score again."""
    lengths = np.array([len(s) for s in model.sequences_], dtype=np.int64)
    state = {f"net.{k}": v.detach().numpy() for k, v in model.network_.state_dict().items()}
    if model.blend_.ease and model.parts_.cf_weights is not None:
        state["cf_weights"] = model.parts_.cf_weights
    if model.blend_.trending and model.parts_.trending is not None:
        state["trending"] = model.parts_.trending
        state["trend_half_life"] = np.array(model.trend_half_life_)
    if model.parts_.popularity is not None:
        state["popularity"] = model.parts_.popularity
    transitions = model.parts_.transitions
    state.update(
        transitions_data=transitions.data,
        transitions_indices=transitions.indices,
        transitions_indptr=transitions.indptr,
        blend_weights=model.blend_.array(),
        cold_factor=np.array(model.cold_.factor),
        cold_neighbour_count=np.array(model.cold_.neighbours),
        cold_offset=np.array(model.cold_.offset),
        cold_text=np.array(model.cold_.text),
        seen=model.seen_,
        cf_regularization=np.array(model.cf_regularization_),
        text_vectors=model.text_vectors_,
        seq_lengths=lengths,
        seq_items=np.concatenate(model.sequences_ or [np.zeros(0, np.int64)]).astype(np.int64),
    )
    return state


def restore_state(model: SequentialRecommender, state: dict[str, np.ndarray]) -> None:
    """Set a fitted `model` from the arrays `fitted_state` made (a model saved before they held the
    items' popularity counts it again from its fitted histories)."""
    model.text_vectors_ = state["text_vectors"]
    model.blend_ = BlendWeights.of(state["blend_weights"].tolist())
    model.trend_half_life_ = float(state.get("trend_half_life", 0.0))
    model.seen_ = state["seen"].astype(bool)
    model.cold_ = ColdPolicy.of_state(state)
    model._set_cold_neighbours()
    model.sequences_ = saved_sequences(state)
    popularity = state.get("popularity")
    if popularity is None:
        popularity = popularity_scores(sequence_matrix(model.sequences_, model.n_items_))
    model.parts_ = BlendParts(
        model.n_items_,
        model.text_vectors_,
        saved_transitions(state, model.n_items_),
        state.get("cf_weights"),
        state.get("trending"),
        popularity,
    )
    model.cf_regularization_ = float(state["cf_regularization"])
    network = model._network_factory()()
    network.load_state_dict({k[4:]: torch.from_numpy(v) for k, v in state.items() if k.startswith("net.")})
    model._use_network(network)


def saved_transitions(state: dict[str, np.ndarray], n_items: int) -> sp.csr_matrix:
    """The transition matrix a state holds."""
    parts = (state["transitions_data"], state["transitions_indices"], state["transitions_indptr"])
    return sp.csr_matrix(parts, shape=(n_items, n_items))


def saved_sequences(state: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The fitted histories a state holds (one array of item indices per user)."""
    bounds = np.concatenate([[0], np.cumsum(state["seq_lengths"])])
    return [state["seq_items"][bounds[i] : bounds[i + 1]] for i in range(len(bounds) - 1)]
