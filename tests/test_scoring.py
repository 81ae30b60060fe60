"""Scores for items the model does not know (added after training): placed once in the model's
space, retrieval ranks them as the catalog-wide scores do; the text shortcuts give what the
catalog-wide computation gives."""

import time

import numpy as np

from shelfwise.engine import Engine
from shelfwise.engine.served import map_by_quantile
from shelfwise.models import create_model
from shelfwise.models.content import text_profile, text_profiles
from shelfwise.store import EventRecord, ItemRecord


def test_one_text_profile_is_the_row_text_profiles_gives():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(500, 16)).astype(np.float32)
    for length in (0, 1, 7, 120):  # 120: past the profile's 50 latest distinct items
        history = rng.integers(0, 500, size=length)
        np.testing.assert_allclose(text_profile(history, vectors), text_profiles([history], vectors)[0], atol=1e-6)


def test_map_by_quantile_reads_numpys_linear_quantile():
    rng = np.random.default_rng(1)
    cold, reference, model = rng.normal(size=300), rng.normal(size=2000), rng.normal(size=2000)
    quantile = np.searchsorted(np.sort(reference), cold, side="right") / len(reference)
    np.testing.assert_allclose(map_by_quantile(cold, reference, model), np.quantile(model, quantile))


def test_retrieval_ranks_new_items_as_the_whole_catalogs_scores_do(shop_dataset, tmp_path):
    folder = tmp_path / "als"
    create_model("als", factors=16, iterations=5, seed=0).fit(shop_dataset).save(folder)
    shop_dataset.save(folder / "dataset")
    engine = Engine(folder, f"sqlite:///{tmp_path / 's.db'}", index="exact")
    try:
        twins = [  # 60 items the model never saw, each the text twin of a known one
            ItemRecord(f"NEW-{i}", r.title, r.description, r.category, r.brand, r.price)
            for i, r in enumerate(engine.catalog.records[:60])
        ]
        engine.upsert_items(twins)
        catalog, served = engine.catalog, engine.served
        assert len(served.cold_positions(len(catalog.records))) == 60
        mask = np.ones(len(catalog.records), dtype=bool)
        mask[::7] = False  # filters apply to new items too
        new = set(served.cold_positions(len(catalog.records)).tolist())
        reached = 0
        for sequence in shop_dataset.sequences()[:20]:
            history = catalog.positions_of([str(i) for i in shop_dataset.item_ids[sequence]])
            short, short_scores = served.candidates(history, mask, 30, engine.text.view(), engine.popularity.counts)
            whole, whole_scores = served.candidates(
                history, mask, 30, engine.text.view(), engine.popularity.counts, exact=True
            )
            np.testing.assert_allclose(short_scores, whole_scores, rtol=1e-5)
            assert set(short) == set(whole) and mask[short].all()
            reached += len(new & set(short.tolist()))
        assert reached  # new items do reach the lists
    finally:
        engine.close()


def test_a_new_twin_is_placed_where_its_trained_original_is():
    from shelfwise.engine.cold_items import place_items
    from shelfwise.retrieval import VectorIndex

    rng = np.random.default_rng(2)
    text = VectorIndex(16, kind="exact")
    vectors = rng.normal(size=(50, 16)).astype(np.float32)
    text.add(np.vstack([vectors, vectors[7:8], rng.normal(size=(1, 16)).astype(np.float32)]))
    model_vectors = rng.normal(size=(50, 8)).astype(np.float32)
    placed = place_items(create_model("als"), model_vectors, np.array([50, 51]), np.arange(50), text)
    np.testing.assert_allclose(placed[0], model_vectors[7], atol=1e-4)  # the twin of item 7
    assert np.isfinite(placed[1]).all() and np.abs(placed[1]).sum() > 0  # a new item like no other


def test_a_shoppers_query_vector_is_computed_once_per_history_and_never_served_stale(
    shop_dataset, tmp_path, monkeypatch
):
    folder = tmp_path / "als"
    create_model("als", factors=16, iterations=5, seed=0).fit(shop_dataset).save(folder)
    shop_dataset.save(folder / "dataset")
    engine = Engine(folder, f"sqlite:///{tmp_path / 's.db'}", index="exact")
    try:
        served = engine.served
        computed = []
        real = served.model.query_vectors
        monkeypatch.setattr(served.model, "query_vectors", lambda h: computed.append(1) or real(h))
        user = str(shop_dataset.user_ids[0])
        first = engine.recommend(user, 10)
        assert engine.recommend(user, 10) == first and len(computed) == 1  # the same history: kept
        other = str(shop_dataset.user_ids[1])
        engine.recommend(other, 10)
        assert len(computed) == 2
        item = next(i for i in engine.catalog.ids if i not in {e.item_id for e in engine.shopper_events(user)})
        engine.record_events([EventRecord(user, item, "purchase", time.time())])
        after = engine.recommend(user, 10)
        assert len(computed) == 3  # a new event: a new history, computed again
        positions = engine.catalog.positions_of([e.item_id for e in engine.shopper_events(user)])
        known = served.model_index_of(positions)
        np.testing.assert_allclose(served.query_vector(known[known >= 0]), real([known[known >= 0]])[0])
        assert after != first
        engine.delete_user(other)  # nothing derived from a deleted shopper's history stays
        engine.recommend(user, 10)
        assert len(computed) == 4
        served.query_cache = 0  # the setting `query_cache` 0: always computed
        engine.recommend(user, 10)
        engine.recommend(user, 10)
        assert len(computed) == 6
    finally:
        engine.close()
