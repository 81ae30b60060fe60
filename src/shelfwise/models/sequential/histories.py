"""Shoppers' histories as the sequential model reads them: deduplicated, padded, cut into training
windows, and split into what a fit trains on and what it holds out to judge itself."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from shelfwise.data.dataset import Dataset
from shelfwise.errors import ConfigError

logger = logging.getLogger(__name__)


def distinct_in_order(sequence: np.ndarray) -> np.ndarray:
    """Drop immediate repeats (a view then a purchase of one item is one step)."""
    if len(sequence) == 0:
        return sequence
    keep = np.ones(len(sequence), dtype=bool)
    keep[1:] = sequence[1:] != sequence[:-1]
    return sequence[keep]


def checked_distinct(histories: list[np.ndarray], n_items: int) -> list[np.ndarray]:
    """Each history's distinct items in order of first occurrence; an index outside [0, n_items) is a
    `ConfigError`."""
    sequences = [distinct_in_order(np.asarray(h, dtype=np.int64)) for h in histories]
    for sequence in sequences:
        if len(sequence) and (sequence.min() < 0 or sequence.max() >= n_items):
            raise ConfigError(f"History item indices must be in [0, {n_items - 1}].")
    return sequences


def pad(sequences: list[np.ndarray], length: int, pad_index: int) -> np.ndarray:
    """Left-padded (len × length) array of the last `length` items of each sequence."""
    out = np.full((len(sequences), length), pad_index, dtype=np.int64)
    for row, sequence in enumerate(sequences):
        tail = sequence[-length:]
        if len(tail):
            out[row, -len(tail) :] = tail
    return out


def windows(sequences: list[np.ndarray], length: int, pad_index: int) -> np.ndarray:
    """Training windows of `length` + 1 items covering each history once (long ones in chunks),
    left-padded with `pad_index`."""
    chunks = []
    for sequence in sequences:
        end = len(sequence)
        while end >= 2:
            chunks.append(sequence[max(0, end - length - 1) : end])
            end -= length
    out = np.full((len(chunks), length + 1), pad_index, dtype=np.int64)
    for row, chunk in enumerate(chunks):
        out[row, -len(chunk) :] = chunk
    return out


def sequence_matrix(sequences: list[np.ndarray], n_items: int) -> sp.csr_matrix:
    """Binary users × items matrix of the histories."""
    lengths = [len(x) for x in sequences]
    items = np.concatenate(sequences) if sequences else np.zeros(0, np.int64)
    rows = np.repeat(np.arange(len(sequences)), lengths)
    matrix = sp.csr_matrix((np.ones(len(items), np.float32), (rows, items)), shape=(len(sequences), n_items)).tocsr()
    matrix.data[:] = 1.0
    return matrix


def item_counts(sequences: list[np.ndarray], n_items: int) -> np.ndarray:
    """How often each item occurs in the histories."""
    return np.bincount(np.concatenate([s for s in sequences if len(s)] or [np.zeros(0, np.int64)]), minlength=n_items)


@dataclass(frozen=True)
class Holdout:
    """What a fit trains on while it judges itself, and what it judges on.

    `train` holds every shopper's history less the held-out items; `users` are the shoppers with
    held-out items and `targets` those items (one array per user); `events` are the (items,
    timestamps) of the events the holdout may see, where events have times (for the trending part).
    """

    train: list[np.ndarray]
    users: list[int]
    targets: list[np.ndarray]
    events: tuple[np.ndarray, pd.Series] | None

    def sample(self, size: int, seed: int) -> Holdout:
        """At most `size` of the held-out users, drawn with `seed` (kept in order)."""
        if len(self.users) <= size:
            return self
        picks = np.sort(np.random.default_rng(seed).choice(len(self.users), size, replace=False))
        return Holdout(self.train, [self.users[i] for i in picks], [self.targets[i] for i in picks], self.events)


def has_timestamps(dataset: Dataset) -> bool:
    """Every interaction has a time (what a temporal holdout and the trending part need)."""
    stamps = dataset.interactions["timestamp"]
    return bool(len(stamps)) and bool(stamps.notna().all())


def make_holdout(dataset: Dataset, sequences: list[np.ndarray], kind: str) -> Holdout:
    """The holdout of a fit.

    ``last``: each history of 3 or more items loses its last item. ``temporal``: items a shopper
    first took in the last 10% of the time span are held out (what a temporal protocol asks); without
    timestamps, ``last``.
    """
    timed = has_timestamps(dataset)
    if kind == "temporal" and timed:
        return _temporal_holdout(dataset, sequences)
    if kind == "temporal":
        logger.warning("sequential: no timestamps for a temporal holdout; holding out last items instead")
    users = [u for u, s in enumerate(sequences) if len(s) >= 3]
    train = [s[:-1] if len(s) >= 3 else s for s in sequences]
    events = None
    if timed:  # the trending part sees no held-out (user, item) pair
        n_items = dataset.n_items
        keys = dataset.interactions["user"].to_numpy() * n_items + dataset.interactions["item"].to_numpy()
        held = np.array([u * n_items + sequences[u][-1] for u in users], dtype=np.int64)
        kept = dataset.interactions[~np.isin(keys, held)]
        events = (kept["item"].to_numpy(), kept["timestamp"])
    return Holdout(train, users, [np.array([sequences[u][-1]]) for u in users], events)


def _temporal_holdout(dataset: Dataset, sequences: list[np.ndarray]) -> Holdout:
    stamps = dataset.interactions["timestamp"]
    cutoff = stamps.quantile(0.9)
    frame = dataset.interactions.iloc[dataset.time_order()]
    frame = frame.drop_duplicates(["user", "item"], keep="first")
    late = (frame["timestamp"] >= cutoff).to_numpy()
    early_items = {u: set(g) for u, g in frame.loc[~late].groupby("user")["item"]}
    late_items = {u: np.unique(g.to_numpy()) for u, g in frame.loc[late].groupby("user")["item"]}
    train = [np.array([i for i in s if i in early_items.get(u, ())], dtype=np.int64) for u, s in enumerate(sequences)]
    users = [u for u in sorted(late_items) if len(train[u])]
    targets = [late_items[u][~np.isin(late_items[u], train[u])] for u in users]
    keep = [row for row, t in enumerate(targets) if len(t)]
    early = dataset.interactions[(stamps < cutoff).to_numpy()]
    return Holdout(
        train, [users[r] for r in keep], [targets[r] for r in keep], (early["item"].to_numpy(), early["timestamp"])
    )


def saved_transitions(state: dict[str, np.ndarray], n_items: int) -> sp.csr_matrix:
    """The transition matrix a state holds."""
    parts = (state["transitions_data"], state["transitions_indices"], state["transitions_indptr"])
    return sp.csr_matrix(parts, shape=(n_items, n_items))


def saved_sequences(state: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The fitted histories a state holds (one array of item indices per user)."""
    bounds = np.concatenate([[0], np.cumsum(state["seq_lengths"])])
    return [state["seq_items"][bounds[i] : bounds[i + 1]] for i in range(len(bounds) - 1)]
