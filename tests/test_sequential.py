"""The flagship sequential model: cold items, real-time updates, and a planted pattern it must learn."""

import numpy as np
import pandas as pd
import pytest

from shelfwise.data.dataset import Dataset
from shelfwise.models import Recommender, SequentialRecommender

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


@pytest.fixture(scope="module")
def cycle_dataset():
    """Item i is always followed by item i+1 (mod 20): a pattern popularity cannot see."""
    rng = np.random.default_rng(3)
    n_items, rows = 20, []
    start = pd.Timestamp("2024-01-01", tz="UTC")
    for user in range(300):
        first = rng.integers(0, n_items)
        for step in range(6):
            item = (first + step) % n_items
            rows.append((f"u{user:03d}", f"i{item:02d}", "view", start + pd.Timedelta(minutes=step)))
    events = pd.DataFrame(rows, columns=["user_id", "item_id", "event_type", "timestamp"])
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
        ids, _ = cycle_model.recommend_for_sequence(np.array(history), 1)
        correct += cycle_dataset.item_ids[ids[0]] == f"i{(item + 1) % 20:02d}"
    assert correct >= 16, f"only {correct} of 20 next items right"


def test_sampled_softmax_learns_the_pattern_from_the_rows_it_touches(cycle_dataset, monkeypatch):
    """Sampled steps build only the item vectors they use and train the ID table with sparse Adam."""
    from shelfwise.models import sequential

    seen_sparse = []
    original = sequential._Network.item_rows

    def spy(self, text, rows, keep, *, sparse=False):
        seen_sparse.append((sparse, len(rows)))
        return original(self, text, rows, keep, sparse=sparse)

    monkeypatch.setattr(sequential._Network, "item_rows", spy)
    model = SequentialRecommender(**SMALL, negatives=6, blend=False).fit(cycle_dataset)  # the transformer alone
    assert seen_sparse and all(sparse for sparse, _ in seen_sparse)
    assert max(rows for _, rows in seen_sparse) <= 20
    index = {item: i for i, item in enumerate(cycle_dataset.item_ids)}
    correct = 0
    for item in range(20):
        history = [index[f"i{(item - 1) % 20:02d}"], index[f"i{item:02d}"]]
        ids, _ = model.recommend_for_sequence(np.array(history), 1)
        correct += cycle_dataset.item_ids[ids[0]] == f"i{(item + 1) % 20:02d}"
    assert correct >= 16, f"only {correct} of 20 next items right with sampled softmax"


def test_a_sampled_step_is_the_same_through_the_data_parallel_module():
    """Ray training wraps the step in `_TrainStep` (for DistributedDataParallel): same logits."""
    import torch

    from shelfwise.models.sequential import _Network, _TrainStep, sampled_logits

    torch.manual_seed(0)
    network = _Network(30, 8, 16, 1, 2, 6, 0.0)
    torch.nn.init.normal_(network.item_ids.weight)
    text = torch.randn(30, 8)
    batch = torch.tensor([[30, 30, 1, 2, 3, 4], [5, 6, 7, 8, 9, 10]])
    picks = torch.tensor([11, 12, 13])
    log_q = torch.zeros(30)
    torch.manual_seed(1)
    direct = sampled_logits(network, text, batch, picks, log_q, id_dropout=0.5, sparse=False)
    torch.manual_seed(1)
    wrapped = sampled_logits(
        network, text, batch, picks, log_q, id_dropout=0.5, sparse=False, step=_TrainStep(network, text)
    )
    assert torch.allclose(direct[0], wrapped[0]) and torch.equal(direct[1], wrapped[1])
    # 8 positions have an input and a target (padding is neither); candidates: 8 targets + 3 negatives
    assert direct[0].shape == (8, 11)
    candidates = torch.tensor([2, 3, 4, 6, 7, 8, 9, 10, 11, 12, 13])
    assert torch.equal(candidates[direct[1]], torch.tensor([2, 3, 4, 6, 7, 8, 9, 10]))


def test_a_large_catalog_switches_the_full_softmax_to_sampled(cycle_dataset, monkeypatch):
    from shelfwise.models import sequential

    model = SequentialRecommender(**SMALL)
    model.n_items_ = 21
    assert model._negatives() == 0
    monkeypatch.setattr(sequential, "FULL_SOFTMAX_MAX_ITEMS", 20)
    assert model._negatives() == sequential.SCALE_NEGATIVES
    assert SequentialRecommender(**SMALL, negatives=5)._negatives() == 5


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
    assert steps["holdout phase"] <= max(0.0, 2.0 - steps["encode and prepare"]) + 1.0, steps
    if "final phase" in steps:
        used = steps["encode and prepare"] + steps["holdout phase"] + steps["blend and EASE"]
        assert steps["final phase"] <= max(0.0, 4.0 - used) + 1.0, steps


def test_training_log_has_the_holdout_curve_and_the_best_epoch(cycle_model):
    log = cycle_model.training_log_
    holdout = log["phases"][0]
    assert holdout["name"] == "holdout"
    curve = [row["holdout ndcg@10"] for row in holdout["epochs"]]
    assert len(curve) >= 1 and all(0.0 <= value <= 1.0 for value in curve)
    assert log["best_epoch"] == 1 + curve.index(max(curve))
    assert set(log["blend"]) == {"transformer", "ease", "text", "transitions"}
    if log["blend"]["transformer"]:
        final = log["phases"][1]
        assert final["name"] == "final"
        assert len(final["epochs"]) == log["best_epoch"]  # the final fit runs as long as the best epoch
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
    before = cycle_model.user_vector(history)
    after = cycle_model.user_vector(np.append(history, (history[-1] + 7) % 20))
    assert not np.allclose(before, after)
    ids_before, _ = cycle_model.recommend_for_sequence(history, 3)
    ids_after, _ = cycle_model.recommend_for_sequence(np.append(history, (history[-1] + 7) % 20), 3)
    assert ids_before[0] != ids_after[0]


def test_save_load_is_exact(cycle_model, tmp_path):
    cycle_model.save(tmp_path / "seq")
    loaded = Recommender.load(tmp_path / "seq")
    users = np.arange(30)
    np.testing.assert_array_equal(loaded.recommend(users, 5)[0], cycle_model.recommend(users, 5)[0])
    np.testing.assert_allclose(loaded.score(users), cycle_model.score(users), rtol=1e-5, atol=1e-5)


def test_a_shopper_known_only_by_words_gets_matching_items(shop_dataset):
    model = SequentialRecommender(**{**SMALL, "epochs": 3, "max_len": 10}).fit(shop_dataset)
    ids, scores = model.recommend_for_words("wireless headphones for music", 10)
    assert np.isfinite(scores).all()
    categories = shop_dataset.items["category"].to_numpy()[ids]
    assert sum("Audio" in c for c in categories) >= 5, categories


def test_temporal_holdout_hides_the_latest_items(tiny_dataset):
    model = SequentialRecommender(holdout="temporal")
    sequences = [model._distinct_in_order(s) for s in tiny_dataset.sequences()]
    train, users, targets = model._make_holdout(tiny_dataset, sequences)
    cutoff = tiny_dataset.interactions["timestamp"].quantile(0.9)
    late = tiny_dataset.interactions[tiny_dataset.interactions["timestamp"] >= cutoff]
    assert set(late["item"]) >= {int(t) for target in targets for t in target}
    for user, target in zip(users, targets, strict=True):
        assert not set(target) & set(train[user].tolist())
    last = SequentialRecommender(holdout="last")._make_holdout(tiny_dataset, sequences)
    assert [t.tolist() for t in last[2]] == [[3], [4]]  # u1 -> d, u2 -> e


def test_unknown_holdout_is_refused(shop_dataset):
    from shelfwise.errors import ConfigError

    with pytest.raises(ConfigError, match="'holdout' must be 'last' or 'temporal'"):
        SequentialRecommender(holdout="random").fit(shop_dataset)
