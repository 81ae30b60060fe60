"""`shelfwise profile`, `search` and `segment` over a model folder and a store."""

import csv
import json
import shutil

import pytest

from shelfwise.cli import main


@pytest.fixture(scope="module")
def served(tmp_path_factory, trained_model_dir):
    folder = tmp_path_factory.mktemp("cli-shoppers")
    model = shutil.copytree(trained_model_dir, folder / "model")
    return ["--model", str(model), "--store", f"sqlite:///{folder / 'store.db'}"], folder


def test_profile_prints_and_answers_json(served, shop_dataset, capsys):
    options, _ = served
    user = str(shop_dataset.user_ids[3])
    assert main(["profile", user, *options]) == 0
    printed = capsys.readouterr().out
    assert user in printed and "interests:" in printed and "price band:" in printed
    assert main(["profile", user, *options, "--json"]) == 0
    profile = json.loads(capsys.readouterr().out)
    assert profile["user_id"] == user and len(profile["keywords"]) == 10
    assert main(["profile", "nobody", *options]) == 2
    assert "Unknown shopper 'nobody'" in capsys.readouterr().err


def test_search_lists_matches_and_refuses_empty_queries(served, shop_dataset, capsys):
    options, _ = served
    assert main(["search", "campnig tnet", *options, "-k", "3"]) == 0
    assert capsys.readouterr().out.count("Camping Tent") >= 3  # title and category of each of the 3
    assert main(["search", "mug", *options, "--user", str(shop_dataset.user_ids[3])]) == 0
    assert "Mug" in capsys.readouterr().out
    assert main(["search", "  ", *options]) == 2
    assert "the search query is empty" in capsys.readouterr().err


def test_segment_saves_segments_and_exports_csv(served, capsys):
    options, folder = served
    out = folder / "segments.csv"
    assert main(["segment", *options, "--segments", "3", "--out", str(out)]) == 0
    printed = capsys.readouterr().out.replace("\n", "")  # rich wraps long paths at the terminal's width
    assert "3 segments (given)" in printed and f"to {out}" in printed
    with out.open() as handle:
        rows = list(csv.DictReader(handle))
    assert rows and set(rows[0]) == {"user_id", "segment_id", "segment_name"}
    assert {row["segment_id"] for row in rows} == {"0", "1", "2"}
    assert len({row["user_id"] for row in rows}) == len(rows)
    assert main(["segment", *options]) == 0  # no count: the silhouette chooses and says so
    assert "chosen by the best silhouette (cosine) of k=2:" in capsys.readouterr().out
