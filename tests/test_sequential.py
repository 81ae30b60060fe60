"""The flagship sequential model: cold items, real-time updates, and a planted pattern it must learn."""

import numpy as np
import pandas as pd
import pytest

from shelfwise.data.dataset import Dataset
from shelfwise.models import Recommender, SequentialRecommender
from shelfwise.ranking import topk

SMALL = {
    "dim": 32,
    "heads": 2,
    "layers": 1,
    "max_len": 8,
    "epochs": 40,
    "patience": 40,
    "max_seconds": 60.0,
    "dropout": 0.1,
    "id_dropout": 0.2,
}


def top_after(model, history, k):
    """The model's top `k` after a history (item indices, oldest first), its own items excluded."""
    history = np.asarray(history, dtype=np.int64)
    scores = model.score_histories([history])
    scores[0, history] = -np.inf
    ids, top = topk(scores, k)
    return ids[0], top[0]


def cycling_views(users: int, n_items: int, steps: int, *, stride: int = 1, seed: int = 3) -> pd.DataFrame:
    """Each shopper views `steps` items from a random start, item i always followed by item
    i + `stride` (mod `n_items`), a minute apart: a pattern popularity cannot see."""
    rng = np.random.default_rng(seed)
    rows = []
    start = pd.Timestamp("2024-01-01", tz="UTC")
    for user in range(users):
        first = rng.integers(0, n_items)
        for step in range(steps):
            item = (first + stride * step) % n_items
            rows.append((f"u{user:03d}", f"i{item:02d}", "view", start + pd.Timedelta(minutes=step)))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "event_type", "timestamp"])


@pytest.fixture(scope="module")
def cycle_dataset():
    """Item i is always followed by item i+1 (mod 20)."""
    n_items = 20
    events = cycling_views(300, n_items, 6)
    items = pd.DataFrame(
        {
            "item_id": [f"i{i:02d}" for i in range(n_items)] + ["new"],
            "title": [f"catalog entry {i}" for i in range(n_items)] + ["a brand new product"],
        }
    )
    return Dataset.from_frames(events, items)


@pytest.fixture(scope="module")
def cycle_model(cycle_dataset):
    return SequentialRecommender(**SMALL).fit(cycle_dataset)


def test_learns_the_planted_next_item_pattern(cycle_model, cycle_dataset):
    index = {item: i for i, item in enumerate(cycle_dataset.item_ids)}
    correct = 0
    for item in range(20):
        history = [index[f"i{(item - 2) % 20:02d}"], index[f"i{(item - 1) % 20:02d}"], index[f"i{item:02d}"]]
        ids, _ = top_after(cycle_model, history, 1)
        correct += cycle_dataset.item_ids[ids[0]] == f"i{(item + 1) % 20:02d}"
    assert correct >= 16, f"only {correct} of 20 next items right"


def test_sampled_softmax_learns_the_pattern_from_the_rows_it_touches(cycle_dataset, monkeypatch):
    """Sampled steps build only the item vectors they use and train the ID table with sparse Adam."""
    from shelfwise.models.sequential.network import Network

    seen_sparse = []
    original = Network.item_rows

    def spy(self, text, rows, keep, *, sparse=False):
        seen_sparse.append((sparse, len(rows)))
        return original(self, text, rows, keep, sparse=sparse)

    monkeypatch.setattr(Network, "item_rows", spy)
    model = SequentialRecommender(**SMALL, negatives=6, blend=False).fit(cycle_dataset)  # the transformer alone
    assert seen_sparse and all(sparse for sparse, _ in seen_sparse)
    assert max(rows for _, rows in seen_sparse) <= 20
    index = {item: i for i, item in enumerate(cycle_dataset.item_ids)}
    correct = 0
    for item in range(20):
        history = [index[f"i{(item - 1) % 20:02d}"], index[f"i{item:02d}"]]
        ids, _ = top_after(model, history, 1)
        correct += cycle_dataset.item_ids[ids[0]] == f"i{(item + 1) % 20:02d}"
    assert correct >= 16, f"only {correct} of 20 next items right with sampled softmax"


def test_a_sampled_step_is_the_same_through_the_data_parallel_module():
    """Ray training wraps the step in `TrainStep` (for DistributedDataParallel): same logits."""
    import torch

    from shelfwise.models.sequential.network import Network, TrainStep, sampled_logits

    torch.manual_seed(0)
    network = Network(30, 8, 16, 1, 2, 6, 0.0)
    torch.nn.init.normal_(network.item_ids.weight)
    text = torch.randn(30, 8)
    batch = torch.tensor([[30, 30, 1, 2, 3, 4], [5, 6, 7, 8, 9, 10]])
    picks = torch.tensor([11, 12, 13])
    log_q = torch.zeros(30)
    torch.manual_seed(1)
    direct = sampled_logits(network, text, batch, picks, log_q, id_dropout=0.5, sparse=False)
    torch.manual_seed(1)
    wrapped = sampled_logits(
        network, text, batch, picks, log_q, id_dropout=0.5, sparse=False, step=TrainStep(network, text)
    )
    assert torch.allclose(direct[0], wrapped[0]) and torch.equal(direct[1], wrapped[1])
    # 8 positions have an input and a target (padding is neither); candidates: 8 targets + 3 negatives
    assert direct[0].shape == (8, 11)
    candidates = torch.tensor([2, 3, 4, 6, 7, 8, 9, 10, 11, 12, 13])
    assert torch.equal(candidates[direct[1]], torch.tensor([2, 3, 4, 6, 7, 8, 9, 10]))


def test_a_large_catalog_switches_the_full_softmax_to_sampled(monkeypatch):
    from shelfwise.models.sequential import training

    assert training.negatives_for(0, 21) == 0
    monkeypatch.setattr(training, "FULL_SOFTMAX_MAX_ITEMS", 20)
    assert training.negatives_for(0, 21) == training.SCALE_NEGATIVES
    assert training.negatives_for(5, 21) == 5


def test_the_time_budget_bounds_the_whole_fit(cycle_dataset):
    import time

    params = {**SMALL, "epochs": 10_000, "patience": 1000, "max_seconds": 4.0}
    started = time.perf_counter()
    model = SequentialRecommender(**params).fit(cycle_dataset)
    seconds = time.perf_counter() - started
    steps = model.training_log_["seconds"]
    assert {"encode and prepare", "holdout phase", "blend and EASE"} <= set(steps)
    assert sum(steps.values()) <= seconds + 0.5
    # the clock stops the epochs (10,000 asked for): the holdout phase gets what is left of half the
    # budget, the final phase what is left of all of it, each over by at most its last epoch
    assert all(len(phase["epochs"]) < 10_000 for phase in model.training_log_["phases"])
    assert model.training_log_["phases"][0]["stopped"] == "time budget"  # the log says why it stopped
    assert steps["holdout phase"] <= max(0.0, 2.0 - steps["encode and prepare"]) + 1.0, steps
    if "final phase" in steps:
        used = steps["encode and prepare"] + steps["holdout phase"] + steps["blend and EASE"]
        assert steps["final phase"] <= max(0.0, 4.0 - used) + 1.0, steps


def test_max_seconds_holds_within_a_tenth_where_one_epoch_outlasts_the_budget():
    """1,500 shoppers' histories in batches of one: an epoch takes far longer than the whole budget,
    so the epoch is cut between two steps, the blend's search stops at its deadline, and the final
    phase, which could not fit, is skipped with its reason (the holdout phase's network serves)."""
    import time

    n_items = 120
    events = cycling_views(1500, n_items, 12, stride=3, seed=5)
    titles = [f"product number {i}" for i in range(n_items)]
    items = pd.DataFrame({"item_id": [f"i{i:02d}" for i in range(n_items)], "title": titles})
    dataset = Dataset.from_frames(events, items)
    model = SequentialRecommender(**{**SMALL, "batch_size": 1, "max_seconds": 6.0})
    started = time.perf_counter()
    model.fit(dataset)
    assert time.perf_counter() - started <= 6.0 * 1.1
    holdout = model.training_log_["phases"][0]
    assert holdout["stopped"] == "time budget" and len(holdout["epochs"]) == 1
    assert 0 < holdout["epochs"][0]["share of the epoch"] < 1
    assert len(model.training_log_["phases"]) == 1 and model.training_log_["final_phase"].startswith("skipped")
    from shelfwise.evaluation.report import phase_summary

    assert phase_summary(holdout).startswith("holdout phase 0 epochs and ")
    scores = model.score_histories([np.array([0, 3, 6])])
    assert scores.shape == (1, n_items) and np.isfinite(scores).all()


def test_training_log_has_the_holdout_curve_and_the_best_epoch(cycle_model):
    log = cycle_model.training_log_
    holdout = log["phases"][0]
    assert holdout["name"] == "holdout"
    curve = [row["holdout ndcg@10"] for row in holdout["epochs"]]
    assert len(curve) >= 1 and all(0.0 <= value <= 1.0 for value in curve)
    assert log["best_epoch"] == 1 + curve.index(max(curve))
    # why the holdout phase stopped (patience 40 = epochs 40: never patience; the clock only if it cut)
    assert holdout["stopped"] == ("epochs" if len(curve) == SMALL["epochs"] else "time budget")
    assert set(log["blend"]) == {"transformer", "ease", "text", "transitions", "trending"}
    if log["blend"]["transformer"]:
        final = log["phases"][1]
        assert final["name"] == "final"
        assert len(final["epochs"]) == log["best_epoch"]  # the final fit runs as long as the best epoch
        assert final["stopped"] == "epochs"
    else:  # the transformer's scores would not count: no final phase
        assert len(log["phases"]) == 1 and log["final_phase"].startswith("skipped")
    assert all(row["loss"] > 0 and row["seconds"] >= 0 for phase in log["phases"] for row in phase["epochs"])


def test_cold_item_has_a_text_vector_and_can_be_recommended(cycle_model, cycle_dataset):
    new = cycle_dataset.item_index("new")
    vector = cycle_model.item_vectors()[new]
    assert np.isfinite(vector).all() and np.linalg.norm(vector) > 0
    ids, scores = cycle_model.recommend(0, cycle_dataset.n_items)
    assert new in ids and np.isfinite(scores[list(ids).index(new)])


def test_a_new_event_changes_the_shopper_without_refit(cycle_model, cycle_dataset):
    user = 5
    history = cycle_model.sequences_[user]
    before = cycle_model.score_histories([history])
    after = cycle_model.score_histories([np.append(history, (history[-1] + 7) % 20)])
    assert not np.allclose(before, after)
    ids_before, _ = top_after(cycle_model, history, 3)
    ids_after, _ = top_after(cycle_model, np.append(history, (history[-1] + 7) % 20), 3)
    assert ids_before[0] != ids_after[0]


def test_save_load_is_exact(cycle_model, tmp_path):
    cycle_model.save(tmp_path / "seq")
    loaded = Recommender.load(tmp_path / "seq")
    users = np.arange(30)
    np.testing.assert_array_equal(loaded.recommend(users, 5)[0], cycle_model.recommend(users, 5)[0])
    np.testing.assert_allclose(loaded.score(users), cycle_model.score(users), rtol=1e-5, atol=1e-5)


def test_temporal_holdout_hides_the_latest_items(tiny_dataset):
    from shelfwise.models.sequential.histories import distinct_in_order, make_holdout

    sequences = [distinct_in_order(s) for s in tiny_dataset.sequences()]
    holdout = make_holdout(tiny_dataset, sequences, "temporal")
    train, users, targets = holdout.train, holdout.users, holdout.targets
    cutoff = tiny_dataset.interactions["timestamp"].quantile(0.9)
    late = tiny_dataset.interactions[tiny_dataset.interactions["timestamp"] >= cutoff]
    assert set(late["item"]) >= {int(t) for target in targets for t in target}
    for user, target in zip(users, targets, strict=True):
        assert not set(target) & set(train[user].tolist())
    last = make_holdout(tiny_dataset, sequences, "last")
    assert [t.tolist() for t in last.targets] == [[3], [4]]  # u1 -> d, u2 -> e


def test_unknown_holdout_is_refused(shop_dataset):
    from shelfwise.errors import ConfigError

    with pytest.raises(ConfigError, match="'holdout' parameter of SequentialRecommender must be one of 'last', 'tem"):
        SequentialRecommender(holdout="random").fit(shop_dataset)


def test_trending_scores_weigh_each_event_by_its_age():
    from shelfwise.models.sequential.blend import trending_scores

    stamps = pd.Series(pd.to_datetime(["2024-01-01", "2024-01-01", "2024-01-15"], utc=True))
    scores = trending_scores(np.array([0, 0, 1]), stamps, 3, half_life=7.0)
    # two events two half-lives old count 2 * 0.25; one event of the latest day counts 1
    np.testing.assert_allclose(scores, np.log1p([0.5, 1.0, 0.0]), rtol=1e-6)
    assert scores[1] > scores[0] and scores[2] == 0.0


NOUNS = ["lamp", "mug", "scarf", "candle", "kettle", "pillow", "notebook", "vase", "towel", "basket"] * 2
COLOURS = ["red", "blue", "green", "black", "white", "grey", "pink", "yellow"]


@pytest.fixture(scope="module")
def seasonal_dataset():
    """Every week three other items are in fashion and most purchases are of them: what sells now
    says more about the next weeks than anyone's history does."""
    rng = np.random.default_rng(5)
    n_items, rows = 40, []
    start = pd.Timestamp("2024-01-01", tz="UTC")
    for user in range(400):
        day = rng.uniform(0, 50)
        for step in range(5):
            moment = day + step * 5.0
            week = int(moment // 7)
            hot = [(3 * week + j) % n_items for j in range(3)]
            item = hot[rng.integers(0, 3)] if rng.random() < 0.8 else rng.integers(0, n_items)
            rows.append((f"u{user:03d}", f"i{item:02d}", "purchase", start + pd.Timedelta(days=moment)))
    events = pd.DataFrame(rows, columns=["user_id", "item_id", "event_type", "timestamp"])
    # titles that say nothing about the week an item is in fashion
    nouns, colours = rng.permutation(NOUNS * 2), rng.permutation(COLOURS * 5)
    words = [f"{a} {b}" for a, b in zip(nouns, colours, strict=True)]
    items = pd.DataFrame({"item_id": [f"i{i:02d}" for i in range(n_items)], "title": words})
    return Dataset.from_frames(events, items)


def test_the_blend_learns_what_sells_now_and_keeps_it(seasonal_dataset, tmp_path):
    from shelfwise.models.sequential import TREND_HALF_LIVES

    params = {**SMALL, "epochs": 3, "patience": 3, "max_seconds": 30.0, "holdout": "temporal"}
    model = SequentialRecommender(**params).fit(seasonal_dataset)
    assert model.blend_.trending > 0, model.training_log_["blend"]
    assert model.trend_half_life_ in TREND_HALF_LIVES
    assert model.training_log_["trend_half_life_days"] == model.trend_half_life_
    # a shopper with no history gets the items in fashion at the end of the log
    stamps = seasonal_dataset.interactions["timestamp"]
    latest = seasonal_dataset.interactions[stamps >= stamps.max() - pd.Timedelta(days=3)]
    in_fashion = set(latest["item"].value_counts().index[:3])
    ids, _ = top_after(model, np.zeros(0, dtype=np.int64), 3)
    assert len(set(ids.tolist()) & in_fashion) >= 2, (ids, in_fashion)
    model.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    history = seasonal_dataset.sequences()[0]
    np.testing.assert_array_equal(model.score_histories([history]), loaded.score_histories([history]))


def test_ndcg_rows_match_the_definition():
    from shelfwise.evaluation.metrics import ndcg_at_k
    from shelfwise.ranking import ndcg_rows

    ids = np.array([[3, 1, 2], [5, -1, -1], [0, 4, 7], [9, 8, 6]])
    targets = [np.array([1]), np.array([5, 6]), np.array([2, 3]), np.array([6, 9, 8, 1])]
    d = 1.0 / np.log2([2.0, 3.0, 4.0])
    expected = [d[1] / d[0], d[0] / (d[0] + d[1]), 0.0, 1.0]
    assert np.allclose(ndcg_rows(ids, targets), expected)
    assert np.allclose(ndcg_at_k(ids, targets, 3), expected)  # evaluation ranks with the same rule
    with pytest.raises(ValueError, match="2 rows of ids but 1 target sets"):
        ndcg_rows(ids[:2], targets[:1])


def test_a_cold_item_inherits_the_scores_of_its_nearest_warm_items_in_text():
    from shelfwise.models.sequential import inherit_cold, text_neighbours

    vectors = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1], [0.6, 0.8], [-1.0, 0.0]], dtype=np.float32)
    cold = np.array([False, False, True, True, True])
    items, neighbours, weights = text_neighbours(vectors, cold, 1)
    assert items.tolist() == [2, 3, 4]
    assert neighbours[:, 0].tolist() == [0, 1, 1]  # item 4 is at cosine -1 and 0 to them: its weight is 0
    np.testing.assert_allclose(weights[:, 0], [1.0, 1.0, 0.0])
    items, neighbours, weights = text_neighbours(vectors, cold, 2)
    np.testing.assert_allclose(weights.sum(axis=1)[:2], 1.0, rtol=1e-6)
    row = dict(zip(neighbours[1].tolist(), weights[1].tolist(), strict=True))
    np.testing.assert_allclose([row[0], row[1]], [0.6 / 1.4, 0.8 / 1.4], rtol=1e-5)  # item 3 = 0.6·e0 + 0.8·e1
    scores = np.array([[2.0, -1.0, 9.0, 9.0, 9.0]], dtype=np.float32)
    inherit_cold(scores, items, neighbours, weights, 1.5)
    np.testing.assert_allclose(scores[0, :2], [2.0, -1.0])  # warm items keep theirs
    expected = 1.5 * (weights * np.array([2.0, -1.0])[neighbours]).sum(axis=1)
    np.testing.assert_allclose(scores[0, 2:], expected, rtol=1e-6)
    scores = np.array([[2.0, -1.0, 9.0, 9.0, 9.0], [0.0, 4.0, 0.0, 0.0, 0.0]], dtype=np.float32)
    spread = scores.std(axis=1)
    inherit_cold(scores, items, neighbours, weights, 1.0, offset=2.0)  # plus 2 standard deviations of the row
    for row, values in enumerate(([2.0, -1.0], [0.0, 4.0])):
        expected = (weights * np.array(values)[neighbours]).sum(axis=1) + 2.0 * spread[row]
        np.testing.assert_allclose(scores[row, 2:], expected, rtol=1e-5)


def test_a_cold_item_adds_its_own_text_score_to_what_it_inherits():
    from shelfwise.models.sequential.cold import ColdNeighbours, ColdPolicy

    vectors = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1], [0.6, 0.8]], dtype=np.float32)
    found = ColdNeighbours.of(vectors, np.array([False, False, True, True]), 1)
    scores = np.array([[2.0, -1.0, 0.0, 0.0]], dtype=np.float32)
    text = np.array([[0.5, 0.1, -1.0, 3.0]], dtype=np.float32)
    inherited = scores.copy()
    found.inherit(inherited, ColdPolicy(2.0, 1))
    found.inherit(scores, ColdPolicy(2.0, 1, text=0.5), text)
    np.testing.assert_allclose(scores[0, :2], [2.0, -1.0])  # warm items keep theirs
    np.testing.assert_allclose(scores[0, 2:], inherited[0, 2:] + 0.5 * text[0, 2:])
    with pytest.raises(ValueError, match="text scores"):
        found.inherit(scores, ColdPolicy(2.0, 1, text=0.5))


def test_the_cold_rule_takes_the_best_cold_slice_only_within_its_tolerance_of_the_best_overall():
    from shelfwise.models.sequential.cold import ColdOption, ColdPolicy, pick_cold_option

    best, close, far = (
        ColdOption(0.500, 0.10, ColdPolicy()),
        ColdOption(0.4975, 0.20, ColdPolicy(1.0, 5)),
        ColdOption(0.480, 0.40, ColdPolicy(2.0, 5)),
    )
    options = [best, close, far]
    assert pick_cold_option(options, 0.0) is best
    assert pick_cold_option(options, 0.004) is best  # 0.4975 is 0.5% below the best
    assert pick_cold_option(options, 0.006) is close
    assert pick_cold_option(options, 0.05) is far
    tied = ColdOption(0.4990, 0.20, ColdPolicy(1.0, 20))
    assert pick_cold_option([best, close, tied], 0.01) is tied  # same cold slice: the better overall


def test_the_holdout_weighs_every_cold_policy_and_none_without_a_cold_target():
    from shelfwise.models.sequential.cold import (
        COLD_FACTORS,
        COLD_NEIGHBOURS,
        COLD_TEXT_WEIGHTS,
        ColdPolicy,
        cold_options,
    )

    rng = np.random.default_rng(0)
    base = rng.normal(size=(3, 30)).astype(np.float32)
    vectors = rng.normal(size=(30, 8)).astype(np.float32)
    cold = np.zeros(30, dtype=bool)
    cold[25:] = True
    seen = (np.array([0, 1, 2]), np.array([0, 1, 2]))
    targets = [np.array([26]), np.array([5]), np.array([7])]
    text = rng.normal(size=(3, 30)).astype(np.float32)
    options, cold_rows = cold_options(base, seen, targets, cold, vectors, 0.0, text)
    assert cold_rows.tolist() == [True, False, False]
    assert len(options) == 1 + len(COLD_NEIGHBOURS) * len(COLD_FACTORS) * len(COLD_TEXT_WEIGHTS)
    assert options[0].policy == ColdPolicy()  # first: no inheritance
    assert all(0.0 <= o.cold_ndcg <= 3 * o.ndcg for o in options)  # one row of three is cold
    with_prior, _ = cold_options(base, seen, targets, cold, vectors, 1.0, None)  # a prior: always inherit
    assert all(o.policy.factor and o.policy.offset == 1.0 and not o.policy.text for o in with_prior)
    assert cold_options(base, seen, [np.array([5])] * 3, cold, vectors, 0.0, text)[0] == []


def test_the_cold_policy_and_its_text_weight_are_chosen_on_the_holdout_and_saved(cycle_model, tmp_path):
    from shelfwise.models.sequential.cold import COLD_TEXT_WEIGHTS

    logged = cycle_model.training_log_["cold_items"]
    assert logged["text"] in COLD_TEXT_WEIGHTS and logged["text"] == cycle_model.cold_.text
    cycle_model.save(tmp_path / "m")
    assert Recommender.load(tmp_path / "m").cold_ == cycle_model.cold_


def test_a_popularity_prior_adds_the_z_scored_popularity_and_can_be_changed_without_a_refit(cycle_model):
    from copy import copy

    from shelfwise.errors import ConfigError
    from shelfwise.models.sequential.blend import zscore

    model = copy(cycle_model)
    takers = np.zeros(model.n_items_)
    for sequence in model.sequences_:
        takers[np.unique(sequence)] += 1
    np.testing.assert_allclose(model.parts_.popularity, np.log1p(takers), rtol=1e-6)
    users = np.arange(30)
    before = model.score(users)
    assert model.rescored(popularity_prior=2.0) and model.popularity_prior == 2.0
    expected = before + 2.0 * zscore(np.log1p(takers)[None].astype(np.float32))
    np.testing.assert_allclose(model.score(users), expected, rtol=1e-5, atol=1e-5)
    assert model.scoring_vectors() is None  # no longer inner products
    with pytest.raises(ConfigError, match="popularity_prior"):
        model.rescored(popularity_prior=-1.0)
    assert model.popularity_prior == 2.0 and not model.rescored(popularity_prior=1.0, dim=8)


def test_a_model_saved_before_the_popularity_part_counts_it_again(cycle_model, tmp_path):
    path = cycle_model.save(tmp_path / "m") / "arrays.npz"
    with np.load(path) as arrays:
        assert "state_popularity" in arrays.files
        kept = {k: arrays[k] for k in arrays.files if k != "state_popularity"}
    np.savez(path, **kept)
    loaded = Recommender.load(tmp_path / "m")
    np.testing.assert_allclose(loaded.parts_.popularity, cycle_model.parts_.popularity)
    histories = [np.array([3, 4, 5]), np.array([7])]
    np.testing.assert_allclose(loaded.score_histories(histories), cycle_model.score_histories(histories))


def test_a_prior_for_new_items_lifts_them_and_survives_saving(cycle_dataset, tmp_path):
    params = {**SMALL, "epochs": 3, "patience": 3, "max_seconds": 30.0}
    plain = SequentialRecommender(**params).fit(cycle_dataset)
    model = SequentialRecommender(**params, cold_offset=3.0).fit(cycle_dataset)
    assert model.cold_offset_ == 3.0 and model.training_log_["cold_items"]["offset"] == 3.0
    new = cycle_dataset.item_index("new")
    users = np.arange(50)
    rank = lambda m: np.argwhere(m.recommend(users, cycle_dataset.n_items)[0] == new)[:, 1]  # noqa: E731
    assert rank(model).mean() < rank(plain).mean() and np.median(rank(model)) <= 2
    model.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    assert loaded.cold_offset_ == 3.0
    np.testing.assert_array_equal(loaded.recommend(users, 5)[0], model.recommend(users, 5)[0])


def test_a_negative_prior_for_new_items_is_refused(shop_dataset):
    from shelfwise.errors import ConfigError

    with pytest.raises(ConfigError, match="cold_offset"):
        SequentialRecommender(cold_offset=-1.0).fit(shop_dataset)


def test_the_prior_for_new_items_can_be_changed_without_a_refit(cycle_dataset):
    from shelfwise.errors import ConfigError

    params = {**SMALL, "epochs": 2, "patience": 2, "max_seconds": 30.0}
    assert not SequentialRecommender(**params).fit(cycle_dataset).rescored(cold_offset=2.0)  # fitted without one
    model = SequentialRecommender(**params, cold_offset=1.0).fit(cycle_dataset)
    users = np.arange(40)
    before = model.score(users)
    assert model.rescored(cold_offset=3.0) and model.cold_offset == 3.0 and model.cold_offset_ == 3.0
    after = model.score(users)
    cold = ~model.seen_
    np.testing.assert_allclose(after[:, ~cold], before[:, ~cold])  # warm items keep their scores
    assert (after[:, cold] > before[:, cold]).all()
    refit = SequentialRecommender(**params, cold_offset=3.0).fit(cycle_dataset)
    np.testing.assert_allclose(refit.score(users), after, rtol=1e-5, atol=1e-5)  # as if fitted with it
    with pytest.raises(ConfigError, match="cold_offset"):
        model.rescored(cold_offset=-1.0)
    assert model.cold_offset == 3.0 and not model.rescored(dim=8)


def test_above_the_ease_limit_the_blend_goes_on_without_ease(cycle_dataset, monkeypatch, tmp_path):
    from shelfwise.models.sequential import blend

    monkeypatch.setattr(blend, "EASE_MAX_ITEMS", 10)  # the catalog has 21 items
    params = {**SMALL, "epochs": 3, "patience": 3, "max_seconds": 30.0}
    model = SequentialRecommender(**params, cold_offset=3.0).fit(cycle_dataset)
    assert model.blend_.ease == 0.0 and model.parts_.cf_weights is None, model.training_log_["blend"]
    assert model.blend_.transitions > 0, model.training_log_["blend"]  # the planted pattern is a transition
    assert model.cold_offset_ == 3.0  # the prior for new items still applies
    new = cycle_dataset.item_index("new")
    ids, _ = model.recommend(np.arange(50), 3)
    assert (ids == new).any(axis=1).mean() > 0.9
    model.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.recommend(np.arange(50), 5)[0], model.recommend(np.arange(50), 5)[0])


def test_above_the_blend_limit_the_transformer_alone_scores(cycle_dataset, monkeypatch):
    from shelfwise.models.sequential import BlendWeights, ColdPolicy
    from shelfwise.models.sequential import model as sequential_model

    monkeypatch.setattr(sequential_model, "BLEND_MAX_ITEMS", 10)
    model = SequentialRecommender(**{**SMALL, "epochs": 2, "max_seconds": 30.0}).fit(cycle_dataset)
    assert model.blend_ == BlendWeights()
    assert model.cold_ == ColdPolicy()


@pytest.mark.parametrize("negatives", [0, 50])
def test_the_same_seed_repeats_a_fit_exactly(negatives):
    """Both the full and the sampled softmax, on two threads (where some backward kernels would
    otherwise sum in a different order each run)."""
    import torch

    rng = np.random.default_rng(3)
    start = pd.Timestamp("2024-01-01", tz="UTC")
    rows = []
    for user in range(600):
        first = rng.integers(0, 300)
        for step in range(8):
            item = (first + step * rng.integers(1, 3)) % 300
            rows.append((f"u{user:03d}", f"i{item:03d}", "view", start + pd.Timedelta(minutes=step)))
    events = pd.DataFrame(rows, columns=["user_id", "item_id", "event_type", "timestamp"])
    items = pd.DataFrame({"item_id": [f"i{i:03d}" for i in range(300)], "title": [f"entry {i}" for i in range(300)]})
    dataset = Dataset.from_frames(events, items)
    params = {**SMALL, "epochs": 3, "patience": 3, "blend": False, "negatives": negatives}
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        first, second = (SequentialRecommender(**params).fit(dataset) for _ in range(2))
    finally:
        torch.set_num_threads(threads)
    histories = dataset.sequences()[:20]
    np.testing.assert_array_equal(first.score_histories(histories), second.score_histories(histories))
    assert not torch.are_deterministic_algorithms_enabled()  # the fit leaves torch's setting as it found it


def test_a_transformer_only_fit_scores_as_inner_products_the_engine_can_index(cycle_model):
    """Where the blend chose the transformer alone, scores are query · item vectors (the serving engine
    then retrieves from a vector index); with another part blended in, the model says it has none."""
    from copy import copy

    from shelfwise.errors import ConfigError
    from shelfwise.models.sequential.blend import BlendWeights
    from shelfwise.models.sequential.cold import ColdPolicy

    alone = copy(cycle_model)
    alone.blend_, alone.cold_ = BlendWeights(), ColdPolicy()
    histories = [np.array([3, 4, 5]), np.array([7]), np.array([0, 0, 19, 1])]
    vectors = alone.scoring_vectors()
    assert vectors is not None and vectors.shape[0] == alone.n_items_
    assert np.allclose(alone.query_vectors(histories) @ vectors.T, alone.score_histories(histories), atol=1e-4)
    # an item it never saw gets what its table holds without the ID part: the projected text
    ids = alone.network_.item_ids.weight[:-1].detach().numpy()
    np.testing.assert_allclose(alone.text_item_vectors(alone.text_vectors_), vectors - ids, atol=1e-5)
    with pytest.raises(ConfigError):
        alone.query_vectors([np.array([alone.n_items_])])
    blended = copy(cycle_model)
    blended.blend_ = BlendWeights(transformer=1.0, transitions=0.5)
    assert blended.scoring_vectors() is None and blended.text_item_vectors(alone.text_vectors_) is None
    with pytest.raises(NotImplementedError):
        blended.query_vectors(histories)


def test_the_ablations_leave_out_the_text_or_the_ids(cycle_dataset):
    """`item_inputs`: ``ids`` reads no text anywhere (cold items ranked last), ``text`` no item IDs."""
    params = {**SMALL, "epochs": 30, "patience": 30}
    ids_only = SequentialRecommender(**params, item_inputs="ids").fit(cycle_dataset)
    network = ids_only.network_
    assert np.allclose(ids_only.item_table_, network.item_ids.weight[:-1].detach().numpy())
    assert ids_only.blend_.text == 0 and ids_only.cold_.factor == 0
    new = cycle_dataset.item_index("new")
    scores = ids_only.score_histories([np.array([0, 1, 2])])
    assert scores[0, new] < np.delete(scores[0], new).min()
    assert ids_only.scoring_vectors() is None
    index = {item: i for i, item in enumerate(cycle_dataset.item_ids)}
    correct = sum(
        cycle_dataset.item_ids[top_after(ids_only, [index[f"i{i:02d}"], index[f"i{(i + 1) % 20:02d}"]], 1)[0][0]]
        == f"i{(i + 2) % 20:02d}"
        for i in range(20)
    )
    assert correct >= 16, f"IDs only: {correct} of 20 next items right"

    text_only = SequentialRecommender(**params, item_inputs="text").fit(cycle_dataset)
    assert not text_only.network_.item_ids.weight.detach().any()  # the ID embedding never learned
    assert text_only.blend_.ease == text_only.blend_.transitions == text_only.blend_.trending == 0
    import torch

    with torch.no_grad():
        projected = text_only.network_.text_projection(torch.from_numpy(text_only.text_vectors_)).numpy()
    assert np.allclose(text_only.item_table_, projected, atol=1e-6)


def test_unknown_item_inputs_are_refused(shop_dataset):
    from shelfwise.errors import ConfigError

    with pytest.raises(ConfigError, match="item_inputs"):
        SequentialRecommender(item_inputs="pictures").fit(shop_dataset)


@pytest.mark.parametrize(
    ("scores", "budget", "stopped", "epochs_run"),
    [
        ([0.5, 0.4, 0.3, 0.2, 0.1], 1e6, "patience", 3),  # best at 1, two epochs without a gain
        ([0.1, 0.2, 0.3, 0.4, 0.5], 1e6, "epochs", 5),
        ([0.1, 0.2, 0.3, 0.4, 0.5], 0.0, "time budget", 1),
    ],
)
def test_a_training_phase_says_why_it_stopped(scores, budget, stopped, epochs_run):
    from shelfwise.models.sequential.network import Network
    from shelfwise.models.sequential.training import TrainingJob, TrainSettings, train_network

    rng = np.random.default_rng(0)
    sequences = [rng.integers(0, 12, size=6) for _ in range(20)]
    given = iter(scores)
    job = TrainingJob(
        make_network=lambda: Network(12, 8, 16, 1, 2, 6, 0.0),
        text_vectors=rng.normal(size=(12, 8)).astype(np.float32),
        sequences=sequences,
        counts=np.bincount(np.concatenate(sequences), minlength=12),
        settings=TrainSettings(epochs=5, batch_size=8, learning_rate=1e-3, id_dropout=0.0, patience=2, negatives=0),
        max_len=6,
        evaluate=lambda network: next(given),
        budget=budget,
        epochs=5,
        phase="holdout",
        seed=0,
    )
    result = train_network(job, rng)
    assert (result.stopped, len(result.curve)) == (stopped, epochs_run)
    assert result.best_epoch == 1 + scores.index(max(scores[:epochs_run]))
    from shelfwise.evaluation.report import PHASE_STOPS, phase_summary

    summary = phase_summary({"name": "holdout", "epochs": result.curve, "stopped": result.stopped})
    assert summary == f"holdout phase {epochs_run} epochs ({PHASE_STOPS[stopped]})"
