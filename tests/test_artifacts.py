"""Serving artifacts: a model folder's serving/ is mapped at start instead of rebuilt, answers as a
rebuilt engine does, and is not trusted where the store's catalog or the settings differ."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import numpy as np
import pytest

from shelfwise.cli import main
from shelfwise.engine import Engine
from shelfwise.engine.build import write_serving_artifacts
from shelfwise.models import create_model
from shelfwise.store import ItemRecord


@pytest.fixture(scope="module")
def als_dir(tmp_path_factory, shop_dataset):
    folder = tmp_path_factory.mktemp("artifacts") / "als"
    create_model("als", factors=16, iterations=5).fit(shop_dataset).save(folder)
    shop_dataset.save(folder / "dataset")
    done = write_serving_artifacts(folder, index="hnsw")
    assert done["items"] == shop_dataset.n_items and done["model_index"] == "hnsw"
    return folder


def _store(tmp_path, name):
    return f"sqlite:///{tmp_path / name}.db"


def test_an_engine_started_from_artifacts_answers_as_one_that_built_everything(als_dir, tmp_path):
    mapped = Engine(als_dir, _store(tmp_path, "a"), index="hnsw")
    built = Engine(als_dir, _store(tmp_path, "b"), index="hnsw", artifacts=False)
    try:
        assert mapped.text.from_artifacts and not built.text.from_artifacts
        assert built.stats()["text_ready"]  # built at start: nothing loads in the background
        assert mapped.wait_until_text_ready(timeout=120)  # the encoder loads in the background
        assert mapped.text.index.graph_size == len(mapped.catalog)  # the mapped graph, not a new one
        assert mapped.catalog.ids == built.catalog.ids
        assert np.allclose(mapped.text.vectors, built.text.vectors, atol=1e-6)
        users = [u.user_id for u in built.users(limit=25)]
        for user in users:
            assert [r.item_id for r in mapped.recommend(user)] == [r.item_id for r in built.recommend(user)]
        for query in ("warm wool scarf", "ceramik mug", "headphones"):
            assert [r.item_id for r in mapped.search(query)] == [r.item_id for r in built.search(query)]
        item = mapped.catalog.ids[5]
        assert [r.item_id for r in mapped.similar(item)] == [r.item_id for r in built.similar(item)]
    finally:
        mapped.close()
        built.close()


def test_items_reworded_or_added_since_training_are_encoded_at_start(als_dir, tmp_path):
    store = _store(tmp_path, "changed")
    first = Engine(als_dir, store, index="hnsw")  # fills the store
    reworded = first.catalog.records[3]
    new_title = "Zanzibar telescope with brass eyepiece"
    first.upsert_items(
        [
            replace(reworded, title=new_title, description="for stargazing"),
            ItemRecord("brand-new-1", "Quokka plush toy", "soft", "toys", "acme", 9.0, "", True, time.time()),
        ]
    )
    first.close()
    again = Engine(als_dir, store, index="hnsw")
    fresh = Engine(als_dir, store, index="hnsw", artifacts=False)
    try:
        assert again.text.from_artifacts
        position = again.catalog.index[reworded.item_id]
        assert np.allclose(again.text.vectors[position], fresh.text.vectors[position], atol=1e-6)
        assert again.search("zanzibar telescope")[0].item_id == reworded.item_id
        assert again.search("quokka")[0].item_id == "brand-new-1"
        assert again.catalog.ids[-1] == "brand-new-1"  # after the trained items, in one run
    finally:
        again.close()
        fresh.close()


def test_artifacts_built_for_another_index_kind_are_not_used(als_dir, tmp_path):
    engine = Engine(als_dir, _store(tmp_path, "exact"), index="exact")
    try:
        assert not engine.text.from_artifacts
        assert engine.served.index is not None and engine.served.index.kind == "exact"
    finally:
        engine.close()


def test_shelfwise_build_writes_the_serving_folder(tmp_path, shop_dataset, capsys):
    folder = tmp_path / "ease"
    create_model("ease", regularization=50.0).fit(shop_dataset).save(folder)
    shop_dataset.save(folder / "dataset")
    assert main(["build", str(folder)]) == 0
    assert "text index exact" in capsys.readouterr().out
    manifest = json.loads((folder / "serving" / "manifest.json").read_text())
    assert manifest["items"] == shop_dataset.n_items and manifest["index"] == "exact"
    assert manifest["model_index"] is None  # EASE's scores are not inner products of item vectors
    engine = Engine(folder, _store(tmp_path, "ease"))
    try:
        assert engine.text.from_artifacts
    finally:
        engine.close()


def test_a_preloaded_model_folder_is_taken_once_and_only_while_unchanged(trained_model_dir, tmp_path):
    """The serving parent reads the folder once (`preload_model_dir`); a worker's first read takes
    that read while the folder is as it was, and a later read (a reload) reads the files again."""
    import os
    import shutil

    from shelfwise.engine.model_folder import preload_model_dir, read_model_dir

    folder = shutil.copytree(trained_model_dir, tmp_path / "model")
    model, dataset = preload_model_dir(folder)
    again, same_data = read_model_dir(folder)
    assert again is model and same_data is dataset
    assert read_model_dir(folder)[0] is not model  # taken once: a reload reads the folder

    preload_model_dir(folder)
    arrays = folder / "arrays.npz"
    os.utime(arrays, ns=(arrays.stat().st_atime_ns, arrays.stat().st_mtime_ns + 10**9))  # retrained
    assert read_model_dir(folder)[0] is not model
    model, _ = preload_model_dir(folder)
    items = folder / "dataset" / "items.parquet"
    os.utime(items, ns=(items.stat().st_atime_ns, items.stat().st_mtime_ns + 10**9))  # a privacy rewrite
    assert read_model_dir(folder)[0] is not model
