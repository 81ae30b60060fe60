"""The torch network of the sequential model: item vectors from text plus ID, a causal transformer
over a shopper's items, and the sampled-softmax step that trains it at scale."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn


class Network(nn.Module):
    """Item vectors (projected text plus an ID embedding; the last ID row is padding) and a causal
    transformer whose hidden state at the last position scores every item."""

    def __init__(
        self,
        n_items: int,
        text_dim: int,
        dim: int,
        layers: int,
        heads: int,
        max_len: int,
        dropout: float,
        *,
        id_std: float = 0.0,
    ) -> None:
        """`id_std`: the ID embedding starts at zero (the text part carries an item at first; an item
        never trained keeps only its text), or, where there is no text, random with this deviation."""
        super().__init__()
        self.text_projection = nn.Linear(text_dim, dim, bias=False)
        self.item_ids = nn.Embedding(n_items + 1, dim, padding_idx=n_items)  # last row: padding
        nn.init.zeros_(self.item_ids.weight)
        if id_std:
            with torch.no_grad():
                self.item_ids.weight[:-1].normal_(std=id_std)
        self.positions = nn.Embedding(max_len, dim)
        nn.init.normal_(self.positions.weight, std=0.02)
        layer = nn.TransformerEncoderLayer(
            dim, heads, dim_feedforward=2 * dim, dropout=dropout, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        self.max_len = max_len
        self._causal: dict[int, torch.Tensor] = {}

    @property
    def pad(self) -> int:
        """The padding index (= the number of items)."""
        return self.item_ids.num_embeddings - 1

    def item_table(self, text: torch.Tensor, id_keep: torch.Tensor | None = None) -> torch.Tensor:
        """Every item's vector: projected text plus ID embedding (dropped where `id_keep` is 0)."""
        ids = self.item_ids.weight[:-1]
        if id_keep is not None:
            ids = ids * id_keep[:, None]
        return self.text_projection(text) + ids

    def item_rows(
        self, text: torch.Tensor, rows: torch.Tensor, keep: torch.Tensor, *, sparse: bool = False
    ) -> torch.Tensor:
        """The vectors of the items `rows` only (as `item_table` gives them, `keep` per row): a step
        of sampled softmax touches these, so its cost does not grow with the catalog. `sparse` makes
        the ID embedding's gradient sparse (for `torch.optim.SparseAdam`)."""
        ids = nn.functional.embedding(rows, self.item_ids.weight, sparse=sparse)
        return self.text_projection(text[rows]) + ids * keep[:, None]

    def forward(self, sequences: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """Hidden state at every position of left-padded sequences (padding index = len(table)).
        Padding becomes a zero vector by masking, not by appending a zero row: that copied the whole
        table on every call (184 ms per answer at 1M items)."""
        pad = table.shape[0]
        embeddings = table[sequences.clamp(max=pad - 1)] * (sequences != pad).unsqueeze(-1)
        return self.run(embeddings)

    def run(self, embeddings: torch.Tensor) -> torch.Tensor:
        """The transformer over input item vectors (batch × length × dim); zero vectors are padding."""
        hidden = embeddings * math.sqrt(embeddings.shape[-1])
        length = embeddings.shape[1]
        hidden = hidden + self.positions.weight[self.max_len - length :][None]
        hidden = self.dropout(hidden)
        causal = self._causal.get(length)
        if causal is None:  # built once per length (a request's one history paid for it every time)
            with torch.inference_mode(False):  # a normal tensor: training may use it after an answer
                causal = torch.triu(torch.full((length, length), float("-inf")), diagonal=1)
            self._causal[length] = causal
        # no key-padding mask: with left padding a fully masked row would give NaN; pads are zero vectors
        out = self.encoder(hidden, mask=causal, is_causal=True)
        return self.norm(out)


class TrainStep(nn.Module):
    """One training forward as a module (the item table with ID dropout, then the transformer), so
    DistributedDataParallel sees every parameter used inside its forward."""

    text: torch.Tensor  # a buffer: moves with the module, never trained

    def __init__(self, network: Network, text: torch.Tensor) -> None:
        super().__init__()
        self.network = network
        self.register_buffer("text", text, persistent=False)

    def forward(
        self, inputs: torch.Tensor, keep: torch.Tensor, rows: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if rows is None:
            table = self.network.item_table(self.text, keep)
        else:
            table = self.network.item_rows(self.text, rows, keep)
        return self.network(inputs, table), table


def sampled_logits(
    network: Network,
    text: torch.Tensor,
    batch: torch.Tensor,
    picks: torch.Tensor,
    log_q: torch.Tensor,
    *,
    id_dropout: float,
    sparse: bool,
    step: nn.Module | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and labels of one sampled-softmax step over `batch` (windows of item indices, left-padded
    with the padding index) against its targets and the negatives `picks`, with the popularity
    correction `log_q`. Only the vectors of the items the step uses are computed (see `item_rows`);
    `step` is the data-parallel `TrainStep` where there is one."""
    pad = network.pad
    inputs, targets = batch[:, :-1], batch[:, 1:]
    mask = (targets != pad) & (inputs != pad)
    rows = torch.unique(torch.cat([batch.flatten(), picks]))
    rows = rows[rows != pad]
    keep = (torch.rand(len(rows)) >= id_dropout).float()
    local = torch.searchsorted(rows, batch)  # the padding index maps to len(rows): the zero row
    if step is None:
        table = network.item_rows(text, rows, keep, sparse=sparse)
        hidden = network(local[:, :-1], table)
    else:
        hidden, table = step(local[:, :-1], keep, rows)
    hidden, targets = hidden[mask], targets[mask]
    candidates = torch.unique(torch.cat([targets, picks]))
    logits = hidden @ table[torch.searchsorted(rows, candidates)].T - log_q[candidates]
    return logits, torch.searchsorted(candidates, targets)


def frozen_table(network: Network, text_vectors: np.ndarray) -> np.ndarray:
    """The inference item table (no ID dropout); leaves the network in eval mode."""
    network.eval()
    with torch.no_grad():
        return network.item_table(torch.from_numpy(text_vectors)).numpy()


def score_padded(network: Network, table: np.ndarray, padded: np.ndarray, *, batch: int = 256) -> np.ndarray:
    """Scores of every item after each left-padded history (rows × items): the last hidden state
    against the item table. Rows that are all padding score 0."""
    item_table = torch.from_numpy(table)
    out = np.empty((len(padded), len(table)), dtype=np.float32)
    with torch.no_grad():
        for start in range(0, len(padded), batch):
            hidden = network(torch.from_numpy(padded[start : start + batch]), item_table)[:, -1]
            out[start : start + batch] = (hidden @ item_table.T).numpy()
    empty = (padded == len(table)).all(axis=1)
    if empty.any():
        out[empty] = 0.0
    return out


def last_hidden(network: Network, table: np.ndarray, padded: np.ndarray) -> np.ndarray:
    """The last hidden state after each left-padded history (rows × dim): `score_padded` is this
    against the item table. Rows that are all padding get a zero vector (so they score 0). Inference
    mode: a fifth less per answer than `no_grad` (no version counters on the many small tensors)."""
    with torch.inference_mode():
        hidden = network(torch.from_numpy(padded), torch.from_numpy(table))[:, -1].numpy().copy()
    hidden[(padded == len(table)).all(axis=1)] = 0.0
    return hidden


@contextlib.contextmanager
def deterministic() -> Iterator[None]:
    """Torch's deterministic kernels while training, so that a seed repeats a fit exactly: with several
    threads, some CPU backward kernels (the gradient of an index into the item table) otherwise sum in
    a different order each run. Warn-only: an op without a deterministic kernel still runs."""
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)
