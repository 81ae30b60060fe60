"""The fitted state of the sequential model as named arrays (what `save` writes and `load` reads):
the network's weights, the blend's parts and weights, the cold policy, the text vectors and the
fitted histories."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

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


def saved_transitions(state: dict[str, np.ndarray], n_items: int) -> sp.csr_matrix:
    """The transition matrix a state holds."""
    parts = (state["transitions_data"], state["transitions_indices"], state["transitions_indptr"])
    return sp.csr_matrix(parts, shape=(n_items, n_items))


def saved_sequences(state: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The fitted histories a state holds (one array of item indices per user)."""
    bounds = np.concatenate([[0], np.cumsum(state["seq_lengths"])])
    return [state["seq_items"][bounds[i] : bounds[i + 1]] for i in range(len(bounds) - 1)]
