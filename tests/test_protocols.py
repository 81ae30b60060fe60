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
        make_splits(tiny_dataset, "p9")


def _training_parts(dataset) -> dict[int, set[int]]:
    """Every interaction but each user's last two (all of a user with fewer than 3 distinct items)."""
    rows = dataset.interactions.iloc[dataset.time_order()].drop_duplicates(["user", "item"])
    parts: dict[int, list[int]] = {}
    for user, item in zip(rows["user"], rows["item"], strict=True):
        parts.setdefault(int(user), []).append(int(item))
    return {u: set(items if len(items) < 3 else items[:-2]) for u, items in parts.items()}


def test_p3_draws_19_items_the_user_has_not_taken_beside_the_target(shop_dataset):
    test = make_splits(shop_dataset, "p3")["test"]
    again = make_splits(shop_dataset, "p3")["test"]
    other = make_splits(shop_dataset, "p3", seed=1)["test"]
    parts = _training_parts(shop_dataset)
    assert test.sampled.shape == (len(test.users), 20)
    np.testing.assert_array_equal(test.sampled, again.sampled)  # seeded
    assert not np.array_equal(test.sampled, other.sampled)
    positions = []
    for user, target, candidates in zip(test.users, test.targets, test.sampled, strict=True):
        assert len(set(candidates.tolist())) == 20 and (candidates == target[0]).sum() == 1
        others = set(candidates.tolist()) - {int(target[0])}
        assert not others & parts[int(user)]
        positions.append(int(np.flatnonzero(candidates == target[0])[0]))
    assert len(set(positions)) > 5  # shuffled: the target is not always in one place
    occurrences = np.bincount([i for items in parts.values() for i in items], minlength=shop_dataset.n_items)
    targets = np.array([t[0] for t in test.targets])
    np.testing.assert_array_equal(test.cold_users, occurrences[targets] <= 5)


def test_p3_tunes_on_the_validation_targets_among_candidates_of_their_own(shop_dataset):
    """The tuning split ranks as the test does: its target (the validation item) among 19 items drawn
    with the next seed from those outside the user's training part, none of them held out of its fit."""
    splits = make_splits(shop_dataset, "p3")
    tune, test = splits["tune"], splits["test"]
    p1 = make_splits(shop_dataset, "p1")["tune"]
    np.testing.assert_array_equal(tune.users, p1.users)
    assert [t.tolist() for t in tune.targets] == [t.tolist() for t in p1.targets]
    assert tune.sampled.shape == (len(tune.users), 20) and not np.array_equal(tune.sampled, test.sampled)
    parts = _training_parts(shop_dataset)
    fitted = set(zip(tune.train.interactions["user"].tolist(), tune.train.interactions["item"].tolist(), strict=True))
    for user, target, candidates in zip(tune.users, tune.targets, tune.sampled, strict=True):
        assert (candidates == target[0]).sum() == 1 and len(set(candidates.tolist())) == 20
        assert not (set(candidates.tolist()) - {int(target[0])}) & parts[int(user)]
        assert (int(user), int(target[0])) not in fitted
    occurrences = np.bincount([i for items in parts.values() for i in items], minlength=shop_dataset.n_items)
    np.testing.assert_array_equal(tune.cold_users, occurrences[[t[0] for t in tune.targets]] <= 5)
    assert set(score_split(Popularity().fit(tune.train), tune)) >= {"hit@1", "ndcg@10", "warm_hit@1"}


def test_p3_ranks_the_target_among_its_candidates_with_ties_against_it(shop_dataset):
    test = make_splits(shop_dataset, "p3")["test"]
    model = Popularity().fit(test.train)
    metrics = score_split(model, test)
    scores = model.score(test.users)
    ranks = []
    for row, (target, candidates) in enumerate(zip(test.targets, test.sampled, strict=True)):
        own = scores[row, target[0]]
        ranks.append(sum(1 for c in candidates if scores[row, c] >= own))
    ranks = np.array(ranks)
    assert metrics["hit@1"] == pytest.approx((ranks <= 1).mean())
    assert metrics["hit@10"] == pytest.approx((ranks <= 10).mean())
    expected = np.where(ranks <= 5, 1 / np.log2(ranks + 1), 0).mean()
    assert metrics["ndcg@5"] == pytest.approx(expected)
    cold = test.cold_users
    assert metrics["cold_hit@5"] == pytest.approx((ranks[cold] <= 5).mean())
    assert metrics["warm_hit@5"] == pytest.approx((ranks[~cold] <= 5).mean())

    class Flat(Popularity):  # every candidate scores alike: the target ranks last
        def _score(self, users, user_items):
            return np.zeros((len(users), self.n_items_))

    flat = score_split(Flat().fit(test.train), test)
    assert flat["hit@10"] == 0.0 and flat["ndcg@10"] == 0.0


def test_p3_needs_enough_items(tiny_dataset):
    with pytest.raises(ConfigError, match="Protocol p3 needs 19 items"):
        make_splits(tiny_dataset, "p3")
