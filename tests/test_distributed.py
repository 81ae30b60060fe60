"""The Ray backend on a local Ray instance of 2 CPUs (needs the `distributed` extra)."""

import json

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="the Ray backend needs the 'distributed' extra")

from shelfwise.distributed import connect, ray_recommend, ray_stream, ray_train_runner  # noqa: E402
from shelfwise.evaluation import make_splits  # noqa: E402
from shelfwise.evaluation.runner import evaluate, fit_and_score  # noqa: E402
from shelfwise.models import SequentialRecommender  # noqa: E402
from shelfwise.text import ItemTextTemplate, create_encoder  # noqa: E402
from shelfwise.text.pipeline import encode_items  # noqa: E402

pytestmark = pytest.mark.slow
SMALL = {"dim": 32, "layers": 1, "max_len": 20, "epochs": 4, "patience": 4, "max_seconds": 300.0, "blend": False}
#: A Ray fit may differ from a local one (DDP averages two half-batches, ID dropout draws per worker);
#: its test NDCG must stay within this much (absolute) of the local fit's on the same data and seed.
TOLERANCE = 0.03


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    connect(num_cpus=2)
    yield
    ray.shutdown()


def test_ray_encoding_matches_local_and_fills_the_cache(shop_dataset, tmp_path):
    items = shop_dataset.items.head(60)
    encoder = create_encoder()
    local = encode_items(items, encoder, template=ItemTextTemplate(), cache_dir=tmp_path / "local")
    stream = ray_stream("default", workers=2, batch_size=32)
    remote = encode_items(items, encoder, template=ItemTextTemplate(), cache_dir=tmp_path / "ray", stream=stream)
    assert remote.encoded == 60 and remote.from_cache == 0
    np.testing.assert_allclose(remote.vectors, local.vectors, atol=1e-5)
    again = encode_items(items, encoder, template=ItemTextTemplate(), cache_dir=tmp_path / "ray", stream=stream)
    assert again.encoded == 0 and again.from_cache == 60  # only new or changed texts reach Ray


def test_ray_scoring_gives_the_local_answer(shop_dataset):
    local = evaluate(shop_dataset, "p1", ["ease", "popularity"], tuned=False)
    remote = evaluate(shop_dataset, "p1", ["ease", "popularity"], tuned=False, recommend=ray_recommend(workers=2))
    assert [r["metrics"] for r in remote] == [r["metrics"] for r in local]


def test_ray_training_matches_a_local_fit_within_the_tolerance(shop_dataset, tmp_path):
    split = make_splits(shop_dataset, "p1")["test"]
    local_metrics, _ = fit_and_score(SequentialRecommender(**SMALL), split)
    distributed = SequentialRecommender(**SMALL)
    distributed.train_runner = ray_train_runner(workers=2)
    ray_metrics, _ = fit_and_score(distributed, split)
    assert abs(ray_metrics["ndcg@10"] - local_metrics["ndcg@10"]) <= TOLERANCE, (ray_metrics, local_metrics)
    log = distributed.training_log_
    assert [p["name"] for p in log["phases"]] == ["holdout", "final"] and log["phases"][0]["workers"] == 2
    assert log["phases"][0]["stopped"] == "epochs"  # SMALL: 4 epochs, patience 4, 300 s
    distributed.save(tmp_path / "model")  # a normal model folder
    loaded = SequentialRecommender.load(tmp_path / "model")
    users = split.users[:20]
    assert np.array_equal(loaded.recommend(users, 5)[0], distributed.recommend(users, 5)[0])


def test_commands_take_the_ray_backend(shop_dataset, tmp_path, capsys):
    from shelfwise.cli import main

    shop_dataset.save(tmp_path / "shop")
    data = ["--data", str(tmp_path / "shop")]
    evaluate_ray = ["evaluate", *data, "--protocol", "p1", "--models", "ease", "--no-tune", "--quiet"]
    assert main([*evaluate_ray, "--backend", "ray", "--workers", "2", "--output", str(tmp_path / "r.json")]) == 0
    assert main([*evaluate_ray, "--output", str(tmp_path / "l.json")]) == 0
    assert (
        json.loads((tmp_path / "r.json").read_text())[0]["metrics"]
        == json.loads((tmp_path / "l.json").read_text())[0]["metrics"]
    )
    assert main(["encode", *data, "--backend", "ray", "--workers", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["items"] == shop_dataset.n_items
    train = ["train", *data, "--model", "ease", "--out", str(tmp_path / "m"), "--backend", "ray"]
    assert main(train) == 2
    assert "--backend ray trains the sequential model" in capsys.readouterr().err
    assert main([*train[:-1], "spark"]) == 2
    assert "--backend must be one of ['local', 'ray']" in capsys.readouterr().err
