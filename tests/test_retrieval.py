"""Vector index (exact and faiss HNSW), filters, MMR and reasons."""

import numpy as np
import pytest

from shelfwise.errors import ConfigError
from shelfwise.retrieval import Filters, VectorIndex, explain, mmr
from shelfwise.store import ItemRecord


def _vectors(n=2000, dim=32, seed=0):
    return np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)


def test_exact_search_is_the_brute_force_answer_with_a_mask():
    vectors = _vectors()
    index = VectorIndex(32)
    index.add(vectors[:1500])
    index.add(vectors[1500:])  # grows past its first buffer
    query = vectors[7]
    mask = np.arange(2000) % 3 == 0
    ids, scores = index.search(query, 10, mask)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    truth = unit @ (query / np.linalg.norm(query))
    truth[~mask] = -np.inf
    assert ids.tolist() == np.argsort(-truth)[:10].tolist()
    assert np.allclose(scores, truth[ids], atol=1e-5)
    assert (ids % 3 == 0).all()


def test_hnsw_finds_most_of_the_exact_neighbours_and_respects_the_mask():
    vectors = _vectors()
    exact, approximate = VectorIndex(32), VectorIndex(32, kind="hnsw")
    exact.add(vectors)
    approximate.add(vectors)
    mask = np.arange(2000) % 2 == 0
    recall = []
    for query in vectors[:50]:
        truth, _ = exact.search(query, 10, mask)
        found, _ = approximate.search(query, 10, mask)
        assert (found % 2 == 0).all()
        recall.append(len(set(truth) & set(found)) / 10)
    assert np.mean(recall) >= 0.9


def test_hnsw_serves_exactly_after_an_update_until_rebuilt():
    vectors = _vectors(300)
    index = VectorIndex(32, kind="hnsw")
    index.add(vectors)
    index.update(np.array([5]), vectors[9])
    ids, _ = index.search(vectors[9], 2)
    assert set(ids.tolist()) == {5, 9}
    index.rebuild()
    ids, _ = index.search(vectors[9], 2)
    assert set(ids.tolist()) == {5, 9}


def test_index_rejects_bad_vectors():
    index = VectorIndex(4)
    with pytest.raises(ConfigError, match="4 dimensions"):
        index.add(np.zeros((2, 3)))
    with pytest.raises(ConfigError, match="finite"):
        index.add(np.full((1, 4), np.nan))
    with pytest.raises(ConfigError, match="kind"):
        VectorIndex(4, kind="magic")


def test_filters_combine_stock_category_price_and_exclusions():
    in_stock = np.array([True, True, False, True, True])
    categories = np.array(["beauty > skin", "beauty", "beauty", "toys", "beauty > hair"], dtype=object)
    prices = np.array([5.0, 50.0, 5.0, 5.0, np.nan])
    mask = Filters(category="Beauty", max_price=10.0).mask(in_stock=in_stock, categories=categories, prices=prices)
    assert mask.tolist() == [True, False, False, False, False]
    mask = Filters(in_stock=False, category="beauty", exclude=(0,)).mask(
        in_stock=in_stock, categories=categories, prices=prices
    )
    assert mask.tolist() == [False, True, True, False, True]
    with pytest.raises(ConfigError, match="above max_price"):
        Filters(min_price=10, max_price=5)
    with pytest.raises(ConfigError, match="min_price"):
        Filters(min_price=-1)


def test_mmr_trades_relevance_for_variety():
    vectors = np.array([[1, 0], [1, 0.01], [1, 0.02], [0, 1]], dtype=np.float32)
    ids = np.arange(4)
    scores = np.array([1.0, 0.99, 0.98, 0.5])
    plain, _ = mmr(ids, scores, vectors, 2, 0.0)
    varied, _ = mmr(ids, scores, vectors, 2, 0.7)
    assert plain.tolist() == [0, 1]
    assert varied.tolist() == [0, 3]


def test_reasons_name_the_history_item_new_and_popular():
    vectors = np.array([[1, 0], [0.95, 0.05], [0, 1], [0.7, 0.7]], dtype=np.float32)
    records = [ItemRecord(str(i), title=f"T{i}", category="Home > Lamps") for i in range(4)]
    reasons = explain(
        np.array([1, 2, 3]),
        history=[(0, "purchase")],
        vectors=vectors,
        records=records,
        new=np.array([False, False, False, True]),
        popular=np.array([False, False, True, False]),
    )
    assert reasons[0].text == "because you bought T0" and reasons[0].item == 0
    assert reasons[1].text == "popular in Lamps"
    assert reasons[2].kind == "new" and reasons[2].text == "new in Lamps"


def test_spelling_correction_leaves_model_numbers_alone():
    from shelfwise.retrieval.lexical import LexicalIndex

    index = LexicalIndex()
    index.set(range(3), ["Ceramic Mug No. 0001234", "Glass Teapot No. 0001299", "Steel Knife SKU ab12cd"])
    index.prepare()
    assert index.query_terms("ceramc mug") == ["ceramic", "mug"]
    assert index.query_terms("0001235") == []  # not turned into another item's number
    assert index.query_terms("ab12ce") == []
    assert index.query_terms("0001234") == ["0001234"]  # an exact number still matches


def test_hnsw_searches_added_and_replaced_rows_exactly_beside_its_graph(monkeypatch):
    import shelfwise.retrieval.index as index_module

    vectors = _vectors(1200)
    exact, approximate = VectorIndex(32), VectorIndex(32, kind="hnsw")
    exact.add(vectors[:1000])
    approximate.add(vectors[:1000])
    assert approximate.graph_size == 1000
    exact.add(vectors[1000:])
    approximate.add(vectors[1000:])  # the tail: not in the graph yet
    assert approximate.graph_size == 1000
    exact.update(np.array([3]), vectors[1100])
    approximate.update(np.array([3]), vectors[1100])
    mask = np.arange(1200) % 5 != 0
    for query in (vectors[1100], vectors[1150], vectors[7]):
        truth, _ = exact.search(query, 5, mask)
        found, _ = approximate.search(query, 5, mask)
        assert found[:2].tolist() == truth[:2].tolist()
        assert mask[found].all()
    monkeypatch.setattr(index_module, "TAIL_LIMIT", 100)
    approximate.add(vectors[:150])  # past the limit: the graph takes the tail in
    assert approximate.graph_size == 1350


def test_a_saved_index_opens_memory_mapped_and_grows_without_touching_its_files(tmp_path):
    vectors = _vectors(600)
    for kind in ("exact", "hnsw"):
        built = VectorIndex(32, kind=kind)
        built.add(vectors[:500])
        built.save(tmp_path, kind)
        before = (tmp_path / f"{kind}.npy").read_bytes()
        opened = VectorIndex.open(tmp_path, kind)
        assert len(opened) == 500 and opened.kind == kind
        assert np.allclose(opened.vectors, built.vectors)
        assert opened.search(vectors[42], 3)[0][0] == 42
        opened.add(vectors[500:])  # into the room left in the file, privately
        opened.update(np.array([0]), vectors[599])
        assert set(opened.search(vectors[599], 2)[0].tolist()) == {0, 599}
        assert (tmp_path / f"{kind}.npy").read_bytes() == before
        assert len(VectorIndex.open(tmp_path, kind)) == 500


def test_a_saved_lexical_index_opens_with_the_same_scores_and_takes_changes(tmp_path):
    from shelfwise.retrieval.lexical import LexicalIndex

    texts = ["red wool scarf", "blue wool hat", "red ceramic mug", "steel kettle", "wool socks red"]
    built = LexicalIndex()
    built.set(range(5), texts)
    built.save(tmp_path)
    opened = LexicalIndex.open(tmp_path)
    assert len(opened) == 5
    assert np.allclose(opened.scores("red wool"), built.scores("red wool"))
    assert opened.query_terms("wooll scraf") == built.query_terms("wooll scraf") == ["wool", "scarf"]
    changes = [(1, "green glass vase"), (5, "red wool blanket")]
    for index in (built, opened):
        for position, text in changes:
            index.set([position], [text])
    assert len(opened) == 6
    assert np.allclose(opened.scores("wool vase"), built.scores("wool vase"))
    fresh = LexicalIndex()
    fresh.set(range(6), [texts[0], "green glass vase", *texts[2:], "red wool blanket"])
    assert np.allclose(opened.scores("red wool green"), fresh.scores("red wool green"))
