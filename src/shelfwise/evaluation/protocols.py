"""Protocols P1 (leave-last-out), P2 (temporal) and P3 (20 sampled candidates, for comparison with
published tables only), exactly as ../shared/PROTOCOLS.md writes them.

A protocol turns a `Dataset` into two `Split`s: ``tune`` (for choosing hyperparameters) and ``test``
(for the reported figures). A split's `train` holds only the rows a model may see in `fit`;
`check_no_leakage` proves that no held-out interaction is among them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import scipy.sparse as sp

from shelfwise.data.dataset import Dataset
from shelfwise.errors import ConfigError, LeakageError

PROTOCOLS = ("p1", "p2", "p3")
DEFAULT_K = {"p1": 10, "p2": 20, "p3": 10}
#: P3: candidates per evaluated user (the target and this many minus one sampled items), and the
#: most times a target may occur in the training parts for its user to count as cold.
P3_CANDIDATES = 20
P3_COLD_MAX = 5
#: Online Retail cutoffs from PROTOCOLS.md.
RETAIL_CUTOFF = pd.Timestamp("2011-11-09 00:00:00", tz="UTC")
RETAIL_TUNE_CUTOFF = pd.Timestamp("2011-10-10 00:00:00", tz="UTC")


@dataclass
class Split:
    """What a model may see (`train`) and what it is scored on (`users`, `targets`)."""

    protocol: str
    stage: str  # "tune" or "test"
    train: Dataset
    users: np.ndarray  # evaluated user indices
    targets: list[np.ndarray]  # relevant item indices per evaluated user
    candidates: np.ndarray  # bool per item: may appear in a list
    k: int
    heldout_orders: np.ndarray  # `order` of the held-out rows (never in train)
    cold_users: np.ndarray | None = None  # P1: bool per evaluated user, target unseen in train (P3: rare)
    sampled: np.ndarray | None = None  # P3: the candidates of each evaluated user (users × 20), shuffled
    cold_items: np.ndarray | None = None  # P2: bool per item, first seen at or after the cutoff
    cutoff: pd.Timestamp | None = None
    notes: dict[str, int] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.protocol}:{self.stage}"

    def history(self) -> sp.csr_matrix:
        """What is removed from each user's list: everything the model was allowed to see."""
        return self.train.user_items(binary=True)


def _dedup_in_time_order(dataset: Dataset) -> pd.DataFrame:
    """Rules 2 and 3: order each user's rows by time (ties: source order), keep each pair's first row."""
    frame = dataset.interactions.iloc[dataset.time_order()]
    return frame.drop_duplicates(["user", "item"], keep="first")


def p1_splits(dataset: Dataset, *, k: int = DEFAULT_K["p1"]) -> dict[str, Split]:
    """Leave-last-out: last item = test target, second-to-last = validation target."""
    rows = _dedup_in_time_order(dataset)
    users = rows["user"].to_numpy()
    position_from_end = rows.groupby("user", sort=False).cumcount(ascending=False).to_numpy()
    counts = rows["user"].map(rows["user"].value_counts()).to_numpy()
    evaluated = counts >= 3
    test_mask = evaluated & (position_from_end == 0)
    val_mask = evaluated & (position_from_end == 1)
    candidates = np.zeros(dataset.n_items, dtype=bool)
    candidates[rows["item"].to_numpy()] = True

    def build(stage: str, target_mask: np.ndarray, hidden_mask: np.ndarray) -> Split:
        train_rows = rows.loc[~hidden_mask]
        target_rows = rows.loc[target_mask].sort_values("user")
        eval_users = target_rows["user"].to_numpy()
        target_items = target_rows["item"].to_numpy()
        seen = np.zeros(dataset.n_items, dtype=bool)
        seen[train_rows["item"].to_numpy()] = True
        return Split(
            protocol="p1",
            stage=stage,
            train=dataset.with_interactions(train_rows),
            users=eval_users.astype(np.int64),
            targets=[np.array([item], dtype=np.int64) for item in target_items],
            candidates=candidates,
            k=k,
            heldout_orders=rows.loc[hidden_mask, "order"].to_numpy(),
            cold_users=~seen[target_items],
        )

    del users
    return {
        "tune": build("tune", val_mask, test_mask | val_mask),
        "test": build("test", test_mask, test_mask),
    }


def p3_splits(dataset: Dataset, *, k: int = DEFAULT_K["p3"], seed: int = 0) -> dict[str, Split]:
    """P1's splits, each evaluated user also holding its target and 19 items drawn uniformly from
    those neither the target nor in the user's training part (every interaction but the last two),
    shuffled; cold = the target occurs at most `P3_COLD_MAX` times in the training parts of all
    users. The test split draws with `seed`, as PROTOCOLS.md says; the tuning split (the validation
    targets) draws its own candidates the same way with `seed` + 1, so that tuning ranks what the
    test ranks: a few sampled items, not the whole catalog."""
    splits = p1_splits(dataset, k=k)
    rows = _dedup_in_time_order(dataset)
    position_from_end = rows.groupby("user", sort=False).cumcount(ascending=False).to_numpy()
    counts = rows["user"].map(rows["user"].value_counts()).to_numpy()
    training_part = rows.loc[(counts < 3) | (position_from_end >= 2)]
    occurrences = np.bincount(training_part["item"].to_numpy(), minlength=dataset.n_items)
    parts = training_part.groupby("user", sort=True)["item"].agg(lambda items: set(items.tolist()))
    drawn = {}
    for stage, draw_seed in (("test", seed), ("tune", seed + 1)):
        split = splits[stage]
        targets = np.array([int(t[0]) for t in split.targets], dtype=np.int64)
        drawn[stage] = replace(
            split,
            protocol="p3",
            sampled=_draw_candidates(split.users, targets, parts, dataset, draw_seed),
            cold_users=occurrences[targets] <= P3_COLD_MAX,
        )
    return drawn


def _draw_candidates(
    users: np.ndarray, targets: np.ndarray, parts: pd.Series, dataset: Dataset, seed: int
) -> np.ndarray:
    """Per user (ascending index order): the target and 19 distinct items drawn one at a time with
    `numpy.random.default_rng(seed)`, rejecting the target and the user's training part (`parts`),
    shuffled with the same generator (users × 20)."""
    rng = np.random.default_rng(seed)
    n_items = dataset.n_items
    sampled = np.empty((len(users), P3_CANDIDATES), dtype=np.int64)
    for row in np.argsort(users, kind="stable"):
        target = int(targets[row])
        excluded = parts.get(int(users[row]), set()) | {target}
        if n_items - len(excluded) < P3_CANDIDATES - 1:
            raise ConfigError(
                f"Protocol p3 needs {P3_CANDIDATES - 1} items a user has not taken; {dataset.name!r} has too few."
            )
        drawn: list[int] = []
        while len(drawn) < P3_CANDIDATES - 1:
            item = int(rng.integers(0, n_items))
            if item not in excluded and item not in drawn:
                drawn.append(item)
        candidates = np.array([target, *drawn], dtype=np.int64)
        rng.shuffle(candidates)
        sampled[row] = candidates
    return sampled


def _temporal_split(rows: pd.DataFrame, dataset: Dataset, cutoff: pd.Timestamp, stage: str, k: int) -> Split:
    stamps = rows["timestamp"]
    before = (stamps < cutoff).to_numpy()
    train_rows = rows.loc[before]
    test_rows = rows.loc[~before]
    candidates = np.zeros(dataset.n_items, dtype=bool)
    candidates[rows["item"].to_numpy()] = True
    seen = np.zeros(dataset.n_items, dtype=bool)
    seen[train_rows["item"].to_numpy()] = True
    # rows are de-duplicated per pair in time order, so a test row's item was never bought before T
    active = np.unique(train_rows["user"].to_numpy())
    relevant = test_rows[test_rows["user"].isin(active)].sort_values(["user", "item"])
    grouped = relevant.groupby("user", sort=True)["item"]
    eval_users = np.array(list(grouped.groups.keys()), dtype=np.int64)
    targets = [np.asarray(items, dtype=np.int64) for _, items in grouped]
    return Split(
        protocol="p2",
        stage=stage,
        train=dataset.with_interactions(train_rows),
        users=eval_users,
        targets=targets,
        candidates=candidates,
        k=k,
        heldout_orders=test_rows["order"].to_numpy(),
        cold_items=candidates & ~seen,
        cutoff=cutoff,
    )


def default_cutoffs(dataset: Dataset) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The P2 cutoffs: PROTOCOLS.md's dates for Online Retail; elsewhere the midnight before the 90%
    quantile of event times, and the same rule again inside the fitted data for tuning."""
    if dataset.meta.get("source_format") == "online-retail":
        return RETAIL_CUTOFF, RETAIL_TUNE_CUTOFF
    stamps = dataset.interactions["timestamp"].dropna()
    if stamps.empty:
        raise ConfigError(f"Protocol p2 needs timestamps; data set {dataset.name!r} has none. Use p1.")
    cutoff = stamps.quantile(0.9).floor("D")
    tune_cutoff = stamps[stamps < cutoff].quantile(0.9).floor("D")
    return cutoff, tune_cutoff


def p2_splits(
    dataset: Dataset,
    *,
    cutoff: pd.Timestamp | str | None = None,
    tune_cutoff: pd.Timestamp | str | None = None,
    k: int = DEFAULT_K["p2"],
) -> dict[str, Split]:
    """Temporal split at `cutoff`; tuning repeats the construction inside the fitted data."""
    default_cutoff, default_tune = default_cutoffs(dataset)
    cutoff = _as_utc(cutoff) if cutoff is not None else default_cutoff
    tune_cutoff = _as_utc(tune_cutoff) if tune_cutoff is not None else default_tune
    if tune_cutoff >= cutoff:
        raise ConfigError(f"The tuning cutoff ({tune_cutoff}) must be before the test cutoff ({cutoff}).")
    rows = _dedup_in_time_order(dataset)
    if rows["timestamp"].isna().any():
        raise ConfigError(f"Protocol p2 needs a timestamp on every row; {dataset.name!r} has rows without.")
    test = _temporal_split(rows, dataset, cutoff, "test", k)
    fitted = rows.loc[(rows["timestamp"] < cutoff).to_numpy()]
    tune = _temporal_split(fitted, dataset, tune_cutoff, "tune", k)
    return {"tune": tune, "test": test}


def _as_utc(value: pd.Timestamp | str) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def make_splits(dataset: Dataset, protocol: str, **options: object) -> dict[str, Split]:
    """The tune and test splits of `protocol` ("p1", "p2" or "p3") for `dataset`."""
    protocol = protocol.lower()
    if protocol == "p1":
        return p1_splits(dataset, **options)  # type: ignore[arg-type]
    if protocol == "p2":
        return p2_splits(dataset, **options)  # type: ignore[arg-type]
    if protocol == "p3":
        return p3_splits(dataset, **options)  # type: ignore[arg-type]
    raise ConfigError(f"Unknown protocol {protocol!r}; valid protocols are {PROTOCOLS}.")


def check_no_leakage(split: Split) -> None:
    """Raise `LeakageError` if any held-out interaction is visible in `split.train`."""
    train = split.train.interactions
    overlap = np.intersect1d(train["order"].to_numpy(), split.heldout_orders)
    if len(overlap):
        raise LeakageError(f"{split.name}: {len(overlap)} held-out rows are in the training data.")
    if split.cutoff is not None and len(train) and (train["timestamp"] >= split.cutoff).any():
        raise LeakageError(f"{split.name}: training data holds rows at or after the cutoff {split.cutoff}.")
    seen = split.train.user_items(binary=True)
    lengths = np.array([len(t) for t in split.targets], dtype=np.int64)
    targets = sp.csr_matrix(
        (
            np.ones(lengths.sum(), np.float32),
            (np.repeat(split.users, lengths), np.concatenate(split.targets) if len(lengths) else []),
        ),
        shape=seen.shape,
    )
    leaked = seen.multiply(targets)
    if leaked.nnz:
        user = int(leaked.nonzero()[0][0])
        raise LeakageError(f"{split.name}: a target of user index {user} is in its training history.")
