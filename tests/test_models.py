"""One contract every model passes: fit, history excluded, save/load gives identical lists."""

from dataclasses import replace
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

from shelfwise.data.dataset import Dataset
from shelfwise.errors import ConfigError, NotFittedError
from shelfwise.evaluation import make_splits, score_split
from shelfwise.models import BASELINES, Recommender, create_model, topk
from shelfwise.models.base import get_model_class, model_names

FAST = {
    "als": {"factors": 16, "iterations": 5},
    "bpr": {"factors": 16, "iterations": 20},
    "mf": {"factors": 16, "epochs": 3},
    "itemknn": {"neighbours": 20},
    "ease": {"regularization": 50.0},
    "sequential": {"dim": 16, "layers": 1, "max_len": 10, "epochs": 2, "max_seconds": 30.0},
}


@pytest.fixture(scope="module", params=(*BASELINES, "sequential"))
def fitted(request, shop_dataset):
    return create_model(request.param, **FAST.get(request.param, {})).fit(shop_dataset)


def test_recommendations_exclude_history_and_have_k_items(fitted, shop_dataset):
    users = np.arange(0, shop_dataset.n_users, 7)
    ids, scores = fitted.recommend(users, 10)
    assert ids.shape == scores.shape == (len(users), 10)
    history = shop_dataset.user_items(binary=True)
    for row, user in enumerate(users):
        assert not set(ids[row]) & set(history[user].indices)
        assert len(set(ids[row])) == 10
        assert np.all(np.diff(scores[row]) <= 0)


def test_candidates_are_respected(fitted, shop_dataset):
    mask = np.zeros(shop_dataset.n_items, dtype=bool)
    mask[::3] = True
    ids, _ = fitted.recommend(np.arange(5), 10, candidates=mask)
    assert mask[ids[ids >= 0]].all()


def test_save_then_load_gives_identical_recommendations(fitted, tmp_path):
    fitted.save(tmp_path / "model")
    loaded = Recommender.load(tmp_path / "model")
    assert type(loaded) is type(fitted)
    assert loaded.get_params() == fitted.get_params()
    users = np.arange(20)
    first, first_scores = fitted.recommend(users, 10)
    second, second_scores = loaded.recommend(users, 10)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(first_scores, second_scores, rtol=1e-6)


def test_similar_items_exclude_the_item(fitted):
    ids, _ = fitted.similar_items(np.array([0, 1, 2]), 5)
    assert ids.shape == (3, 5)
    for row, item in enumerate([0, 1, 2]):
        assert item not in ids[row]


def test_single_user_gives_1d_arrays(fitted):
    ids, scores = fitted.recommend(3, 4)
    assert ids.shape == (4,) and scores.shape == (4,)


def test_bad_arguments_are_named(fitted):
    with pytest.raises(ConfigError, match="'k' parameter of recommend"):
        fitted.recommend(0, -3)
    with pytest.raises(ConfigError, match="User indices"):
        fitted.recommend(10**9, 5)


def test_unfitted_model_says_so():
    with pytest.raises(NotFittedError, match="not fitted"):
        create_model("ease").recommend(0, 5)


def test_unknown_model_and_parameter_list_the_choices():
    with pytest.raises(ConfigError, match="valid models are"):
        create_model("nope")
    with pytest.raises(ConfigError, match=r"no parameter\(s\) \['lambda_'\]; valid parameters are"):
        create_model("ease", lambda_=3)


def test_bad_hyperparameter_fails_before_any_data_is_read_and_in_fit_with_its_range(shop_dataset):
    with pytest.raises(ConfigError, match=r"'regularization' parameter of EASE must be a float in \[1e-06, 1e\+09\]"):
        create_model("ease", regularization=-1.0)
    model = create_model("ease")
    model.regularization = 0.0
    with pytest.raises(ConfigError, match=r"'regularization' parameter of EASE must be a float in"):
        model.fit(shop_dataset)
    with pytest.raises(ConfigError, match=r"'backend' parameter of ContentKNN must be one of 'torch', 'torch-int8'"):
        create_model("content", backend="onnx")
    with pytest.raises(ConfigError, match=r"'blend' parameter of SequentialRecommender must be a bool"):
        create_model("sequential", blend=1)
    create_model("content", cache_dir=None, max_seq_length=None)  # optional: null lets the model pick


@pytest.mark.parametrize("name", model_names())
def test_every_model_declares_each_parameter_with_a_meaning_and_its_default_is_allowed(name):
    """The declarations `--help-params` lists are the signature's: neither can go stale."""
    import inspect

    model_cls = get_model_class(name)
    signature = {k: v for k, v in inspect.signature(model_cls.__init__).parameters.items() if k != "self"}
    assert set(model_cls.params) == set(signature)
    for row in model_cls.describe_params():
        assert row["help"] and row["allowed"] and row["default"] == signature[row["name"]].default
        model_cls.params[row["name"]].check(name, row["name"], row["default"])


def test_train_lists_a_models_parameters_from_its_declarations(capsys):
    from shelfwise.cli import main

    assert main(["train", "--model", "sequential", "--help-params"]) == 0
    listed = capsys.readouterr().out
    for name, param in get_model_class("sequential").params.items():
        assert name in listed and param.help.split()[0] in listed
    assert "max_seconds" in listed and "540" in listed and "float in [1, 1e+06]" in listed
    assert main(["train", "--model", "ease"]) == 2
    assert "train needs --data" in capsys.readouterr().err


def test_topk_breaks_ties_by_lowest_index():
    scores = np.array([[1.0, 3.0, 3.0, 0.0, 3.0, 2.0] + [0.0] * 30])
    ids, top = topk(scores, 3)
    assert ids.tolist() == [[1, 2, 4]]
    assert top.tolist() == [[3.0, 3.0, 3.0]]
    scores[0, :] = -np.inf
    scores[0, 5] = 1.0
    ids, _ = topk(scores, 2)
    assert ids.tolist() == [[5, -1]]


@pytest.mark.parametrize("k", [1, 5, 10])
def test_topk_matches_a_full_stable_sort_with_many_ties(k):
    rng = np.random.default_rng(k)
    scores = rng.integers(0, 6, size=(200, 120)).astype(np.float32)  # ties everywhere, at the boundary too
    scores[rng.random(scores.shape) < 0.1] = -np.inf
    scores[7] = -np.inf
    expected = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    expected_top = np.take_along_axis(scores, expected, axis=1)
    ids, top = topk(scores, k)
    assert np.array_equal(np.where(np.isneginf(expected_top), -1, expected), ids)
    assert np.array_equal(expected_top, top)
    distinct = rng.permutation(200 * 120).reshape(200, 120).astype(np.float64)  # no ties
    assert np.array_equal(topk(distinct, k)[0], np.argsort(-distinct, axis=1)[:, :k])


def test_personalised_models_beat_popularity_on_the_synthetic_shop(shop_dataset):
    split = make_splits(shop_dataset, "p1")["test"]
    results = {}
    for name in ("popularity", "itemknn", "ease", "als"):
        model = create_model(name, **FAST.get(name, {})).fit(split.train)
        results[name] = score_split(model, split)["ndcg@10"]
    assert max(results["itemknn"], results["ease"], results["als"]) > 3 * results["popularity"], results


def test_content_model_ranks_cold_items_from_text(shop_dataset):
    # drop every event of one item: it stays in the catalog with its text only
    cold_item = int(shop_dataset.interactions["item"].value_counts().index[0])
    kept = shop_dataset.interactions[shop_dataset.interactions["item"] != cold_item]
    train = shop_dataset.with_interactions(kept)
    model = create_model("content").fit(train)
    vector = model.item_vectors()[cold_item]
    assert np.isfinite(vector).all() and np.linalg.norm(vector) > 0.99
    nearest, _ = model.similar_items(cold_item, 20)
    users = np.flatnonzero(np.isin(train.user_items(binary=True)[:, nearest[:3]].toarray().sum(axis=1), [1, 2, 3]))
    ids, _ = model.recommend(users, 50)
    assert (ids == cold_item).any()


def test_fresh_history_is_scored_without_a_refit(fitted, shop_dataset):
    """score_histories: finite scores for any history, and one more event moves them."""
    model = fitted
    history = shop_dataset.sequences()[0][:5]
    before = model.score_histories([history])
    assert before.shape == (1, shop_dataset.n_items) and np.isfinite(before).all()
    extra = next(i for i in range(shop_dataset.n_items) if i not in set(history))
    after = model.score_histories([np.append(history, extra)])
    if model.name != "popularity":
        assert not np.allclose(before, after)
    with pytest.raises(ConfigError, match="History item indices"):
        model.score_histories([np.array([shop_dataset.n_items])])


def test_forget_user_erases_its_history(fitted, shop_dataset, tmp_path):
    model = type(fitted).load(fitted.save(tmp_path / "m"))
    model.forget_user(0)
    assert model.user_items_[0].nnz == 0
    ids, _ = model.recommend(0, 5)
    assert len(ids) == 5
    with pytest.raises(ConfigError, match="User index"):
        model.forget_user(shop_dataset.n_users)


def test_ease_weights_are_row_major_when_fitted_and_when_loaded(tmp_path):
    """A shopper's scores read rows of B: a Fortran-ordered B (as LAPACK returns it) made one
    answer a thousand times slower."""
    import scipy.sparse as sp

    from shelfwise.models.ease import EASE, ease_weights

    matrix = sp.random(60, 40, density=0.2, format="csr", random_state=0)
    matrix.data[:] = 1.0
    weights = ease_weights(matrix, 10.0)
    assert weights.flags.c_contiguous
    model = EASE(regularization=10.0)
    model.n_users_, model.n_items_, model.user_items_ = 60, 40, matrix
    model.weights_ = np.asfortranarray(weights)
    model.save(tmp_path / "ease")
    assert Recommender.load(tmp_path / "ease").weights_.flags.c_contiguous


def test_large_model_arrays_are_mapped_from_the_file_and_copied_only_when_changed(tmp_path):
    """Worker processes share one copy of a model's large arrays (the page cache): they are mapped
    copy-on-write, so a change stays in the process that made it."""
    import mmap

    import scipy.sparse as sp

    from shelfwise.models.arrays import MAP_FROM_BYTES
    from shelfwise.models.ease import EASE

    n = 600  # 600 × 600 float32: over MAP_FROM_BYTES
    matrix = sp.random(50, n, density=0.05, format="csr", random_state=1, dtype=np.float32)
    matrix.data[:] = 1.0
    model = EASE(regularization=10.0)
    model.n_users_, model.n_items_, model.user_items_ = 50, n, matrix
    model.weights_ = np.random.default_rng(0).normal(size=(n, n)).astype(np.float32)
    assert model.weights_.nbytes >= MAP_FROM_BYTES
    model.save(tmp_path / "ease")
    first, second = (Recommender.load(tmp_path / "ease") for _ in range(2))
    base = first.weights_
    while not isinstance(base, mmap.mmap) and getattr(base, "base", None) is not None:
        base = base.base
    assert isinstance(base, mmap.mmap)  # mapped, not read
    np.testing.assert_array_equal(first.weights_, model.weights_)
    first.weights_[0, 0] = 1e6  # copy-on-write: neither the file nor another load sees it
    assert second.weights_[0, 0] == model.weights_[0, 0]
    assert Recommender.load(tmp_path / "ease").weights_[0, 0] == model.weights_[0, 0]


def test_cosine_similarity_follows_new_item_vectors():
    """Unit vectors are computed once per set of item vectors, and again when the vectors change."""
    from shelfwise.models.base import Recommender

    class Vectors(Recommender):
        name = "vectors-under-test"

        def __init__(self) -> None:
            pass

        def _fit(self, dataset, *, progress):  # pragma: no cover - not fitted here
            raise NotImplementedError

        def _score(self, users, user_items):  # pragma: no cover
            raise NotImplementedError

        def _state(self):
            return {}

        def _set_state(self, state):
            pass

        def item_vectors(self):
            return self.vectors

    model = Vectors()
    model.vectors = np.array([[1.0, 0.0], [2.0, 0.1], [0.0, 3.0]])
    first = model._item_similarity(np.array([0]))[0]
    assert np.argmax(first[1:]) == 0 and np.isclose(first[0], 1.0)
    model.vectors = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 0.1]])
    second = model._item_similarity(np.array([0]))[0]
    assert np.argmax(second[1:]) == 1  # the new vectors, not the cached unit rows of the old ones


def test_tuning_scores_each_rescoring_value_on_the_fitted_model_without_a_refit(shop_dataset, monkeypatch):
    from shelfwise.evaluation import runner
    from shelfwise.models.popularity import Popularity

    fits = []

    class Signed(Popularity):
        """Popularity times `sign`: -1 ranks the least taken items first."""

        name = "signed-popularity"
        tuning_grid = ({"sign": -1.0},)
        rescoring_grid: ClassVar[dict[str, tuple[float, ...]]] = {"sign": (-1.0, 1.0, 0.5)}

        def __init__(self, sign: float = 1.0) -> None:
            self.sign = sign

        def _fit(self, dataset, *, progress):
            fits.append(self.sign)
            super()._fit(dataset, progress=progress)

        def _score(self, users, user_items):
            return self.sign * super()._score(users, user_items)

        def rescored(self, **params):
            if set(params) != {"sign"} or params["sign"] == 0.5:  # 0.5 does not apply to this fit
                return False
            self.sign = params["sign"]
            return True

    monkeypatch.setattr(runner, "get_model_class", lambda name: Signed)
    split = make_splits(shop_dataset, "p1")["tune"]
    result = runner.tune("signed-popularity", split)
    assert fits == [-1.0]  # one fit; the other sign was scored on it
    assert [trial for trial, _ in result.trials] == [{"sign": -1.0}, {"sign": 1.0}]
    assert result.best_params == {"sign": 1.0} and result.trials[1][1] > result.trials[0][1]
    popularity = score_split(Popularity().fit(split.train), split)["ndcg@10"]
    assert result.trials[1][1] == pytest.approx(popularity)


def test_tuning_tries_the_sampled_rescoring_grid_only_on_sampled_candidates(shop_dataset, monkeypatch):
    """A model's `sampled_rescoring_grid` is tried where the tuning split ranks sampled candidates
    (P3) and not on a full ranking; each parameter's values are tried from the fit as it was."""
    from shelfwise.evaluation import runner
    from shelfwise.models.popularity import Popularity

    class Shifted(Popularity):
        """Popularity times `sign`, plus `shift` × the item index."""

        name = "shifted-popularity"
        rescoring_grid: ClassVar[dict[str, tuple[float, ...]]] = {"sign": (-1.0,)}
        sampled_rescoring_grid: ClassVar[dict[str, tuple[float, ...]]] = {"shift": (0.5, 2.0)}

        def __init__(self, sign: float = 1.0, shift: float = 0.0) -> None:
            self.sign, self.shift = sign, shift

        def _score(self, users, user_items):
            return self.sign * super()._score(users, user_items) + self.shift * np.arange(self.n_items_)

        def rescored(self, **params):
            (name, value), *rest = params.items()
            setattr(self, name, value)
            return not rest

    monkeypatch.setattr(runner, "get_model_class", lambda name: Shifted)
    full = runner.tune("shifted-popularity", make_splits(shop_dataset, "p1")["tune"])
    assert [trial for trial, _ in full.trials] == [{}, {"sign": -1.0}]
    sampled_split = make_splits(shop_dataset, "p3")["tune"]
    sampled = runner.tune("shifted-popularity", sampled_split)
    assert [trial for trial, _ in sampled.trials] == [{}, {"sign": -1.0}, {"shift": 0.5}, {"shift": 2.0}]
    fitted = Shifted(shift=2.0).fit(sampled_split.train)  # scored with sign 1, as the trial says
    assert sampled.trials[3][1] == pytest.approx(score_split(fitted, sampled_split)["ndcg@10"])


def test_tuning_skips_a_temporal_holdout_on_data_without_timestamps(shop_dataset, monkeypatch):
    """Without timestamps a temporal holdout falls back to the default's: that trial is not fitted."""
    from shelfwise.evaluation import runner
    from shelfwise.models.popularity import Popularity
    from shelfwise.models.sequential import SequentialRecommender

    fits = []

    class Holdouts(Popularity):
        name = "holdouts"
        tuning_grid = ({}, {"holdout": "temporal"})
        trial_differs = SequentialRecommender.trial_differs  # the flagship's rule, on a cheap model

        def __init__(self, holdout: str = "last") -> None:
            self.holdout = holdout

        def _fit(self, dataset, *, progress):
            fits.append(self.holdout)
            super()._fit(dataset, progress=progress)

    monkeypatch.setattr(runner, "get_model_class", lambda name: Holdouts)
    split = make_splits(shop_dataset, "p1")["tune"]
    assert split.train.interactions["timestamp"].notna().all()
    runner.tune("holdouts", split)
    assert fits == ["last", "temporal"]
    train = split.train
    untimed_train = Dataset(train.interactions.assign(timestamp=pd.NaT), train.user_ids, train.items, name=train.name)
    untimed = replace(split, train=untimed_train)
    fits.clear()
    result = runner.tune("holdouts", untimed)
    assert fits == ["last"] and [trial for trial, _ in result.trials] == [{}]
