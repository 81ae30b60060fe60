import math

import numpy as np
import pandas as pd
import pytest

from shelfwise.errors import ConfigError, LeakageError
from shelfwise.evaluation import check_no_leakage, make_splits, score_split
from shelfwise.models import Popularity


def _items(dataset, indices):
    return sorted(dataset.item_ids[np.asarray(indices)].tolist())


def _train_pairs(split):
    frame = split.train.interactions
    users = split.train.user_ids[frame["user"].to_numpy()]
    items = split.train.item_ids[frame["item"].to_numpy()]
    return sorted(zip(users.tolist(), items.tolist(), strict=True))


def test_p1_leave_last_out_with_dedup_and_time_ties(tiny_dataset):
    splits = make_splits(tiny_dataset, "p1")
    test, tune = splits["test"], splits["tune"]
    assert tiny_dataset.user_ids[test.users].tolist() == ["u1", "u2"]
    assert [_items(tiny_dataset, t) for t in test.targets] == [["d"], ["e"]]
    assert [_items(tiny_dataset, t) for t in tune.targets] == [["c"], ["b"]]
    assert _train_pairs(test) == [
        ("u1", "a"),
        ("u1", "b"),
        ("u1", "c"),
        ("u2", "a"),
        ("u2", "b"),
        ("u3", "a"),
        ("u3", "c"),
        ("u4", "e"),
    ]
    assert _train_pairs(tune) == [("u1", "a"), ("u1", "b"), ("u2", "a"), ("u3", "a"), ("u3", "c"), ("u4", "e")]
    assert test.cold_users.tolist() == [True, False]  # d never seen in training, e seen (u4)
    assert test.candidates.all() and test.k == 10


def test_p1_popularity_by_hand(tiny_dataset):
    split = make_splits(tiny_dataset, "p1")["test"]
    model = Popularity().fit(split.train)
    ids, _ = model.recommend(split.users, 10, candidates=split.candidates)
    # popularity a=3, b=2, c=2 (tie: b first), e=1, d=0; u1 saw a,b,c; u2 saw a,b
    assert [_items(tiny_dataset, row[row >= 0][:1]) for row in ids] == [["e"], ["c"]]
    metrics = score_split(model, split)
    assert metrics["ndcg@10"] == pytest.approx(1 / math.log2(3))
    assert metrics["recall@10"] == pytest.approx(1.0)
    assert metrics["cold_ndcg@10"] == pytest.approx(1 / math.log2(3))


def test_p2_temporal_split(tiny_dataset):
    splits = make_splits(tiny_dataset, "p2", cutoff="2024-01-04", tune_cutoff="2024-01-02")
    test, tune = splits["test"], splits["tune"]
    assert tiny_dataset.user_ids[test.users].tolist() == ["u1", "u2"]
    assert [_items(tiny_dataset, t) for t in test.targets] == [["d"], ["e"]]
    assert _items(tiny_dataset, np.flatnonzero(test.cold_items)) == ["d"]
    assert _items(tiny_dataset, np.flatnonzero(test.candidates)) == ["a", "b", "c", "d", "e"]
    # tuning: the same construction inside the fitted data (rows before 2024-01-04)
    assert tiny_dataset.user_ids[tune.users].tolist() == ["u1", "u2"]
    assert [_items(tiny_dataset, t) for t in tune.targets] == [["b", "c"], ["b"]]
    assert _items(tiny_dataset, np.flatnonzero(tune.candidates)) == ["a", "b", "c", "e"]
    assert (test.train.interactions["timestamp"] < pd.Timestamp("2024-01-04", tz="UTC")).all()


def test_p2_cold_recall_is_pooled(tiny_dataset):
    split = make_splits(tiny_dataset, "p2", cutoff="2024-01-04", tune_cutoff="2024-01-02")["test"]
    metrics = score_split(Popularity().fit(split.train), split)
    assert set(metrics) == {"ndcg@20", "recall@20", "cold_recall@20"}
    assert metrics["recall@20"] == pytest.approx(1.0)  # only 5 items: every list holds every target
    assert metrics["cold_recall@20"] == pytest.approx(1.0)


def test_leakage_is_detected(tiny_dataset):
    split = make_splits(tiny_dataset, "p1")["test"]
    check_no_leakage(split)
    leaked = tiny_dataset.with_interactions(tiny_dataset.interactions)
    split.train = leaked
    with pytest.raises(LeakageError):
        check_no_leakage(split)


def test_p2_cutoff_order_is_checked(tiny_dataset):
    with pytest.raises(ConfigError, match="tuning cutoff"):
        make_splits(tiny_dataset, "p2", cutoff="2024-01-02", tune_cutoff="2024-01-03")
    with pytest.raises(ConfigError, match="valid protocols"):
        make_splits(tiny_dataset, "p3")
