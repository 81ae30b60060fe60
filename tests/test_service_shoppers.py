"""Search, shopper profiles and the shopper list over HTTP, and the web page's files."""

import shutil

import numpy as np
import pytest
from fastapi.testclient import TestClient

from shelfwise.engine import Engine
from shelfwise.engine.understanding import fuse_search, last_session, price_band, taste_vector
from shelfwise.retrieval.lexical import LexicalIndex, tokenize
from shelfwise.service import create_app
from shelfwise.settings import load_settings
from shelfwise.store import EventRecord

KEY = "shoppers-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def client(tmp_path_factory, trained_model_dir):
    folder = tmp_path_factory.mktemp("shoppers")
    engine = Engine(shutil.copytree(trained_model_dir, folder / "model"), f"sqlite:///{folder / 'store.db'}")
    with TestClient(create_app(engine, load_settings(), api_key=KEY)) as http:
        http.engine = engine
        yield http
    engine.close()


def _search(client, query: str, **params) -> list[dict]:
    response = client.get("/v1/search", params={"q": query, **params})
    assert response.status_code == 200, response.text
    return response.json()["items"]


# ------------------------------------------------------------------------------------ search
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("headset", "Wireless Headphones"),  # a word no product uses
        ("campnig tnet", "Camping Tent"),  # two typos
        ("yoga matt", "Yoga Mat"),
        ("Chocolate", "Dark Chocolate"),
        ("cellphone case", "Phone Case"),
    ],
)
def test_search_finds_products_by_synonyms_and_through_typos(client, query, expected):
    items = _search(client, query, k=5)
    assert items and items[0]["category"].endswith(expected), [i["title"] for i in items]
    assert items[0]["reason"] == {"kind": "search", "text": f'matches "{query}"', "item_id": None}


@pytest.mark.parametrize("query", ["chaussures de course", "Kopfhörer für Kinder", "xyzzy", "🙂", "SELECT * FROM"])
def test_other_languages_and_odd_queries_get_an_answer_not_an_error(client, query):
    items = _search(client, query, k=5)
    assert len(items) <= 5 and all(i["reason"]["kind"] == "search" for i in items)


@pytest.mark.parametrize("query", ["zzqxv nonsenseword", "xyzzy", "qwrtp", "🙂"])
def test_a_query_that_matches_nothing_gets_an_empty_list(client, shop_dataset, query):
    assert _search(client, query, k=12) == []
    assert _search(client, query, k=12, user_id=str(shop_dataset.user_ids[3])) == []


@pytest.mark.parametrize("query", ["", "   "])
def test_an_empty_query_is_a_400_that_says_so(client, query):
    response = client.get("/v1/search", params={"q": query})
    assert response.status_code == 400
    assert response.json() == {"error": "bad_request", "message": "q: the search query is empty; give a few words."}


def test_search_for_an_unknown_shopper_is_not_personal_and_says_so(client):
    response = client.get("/v1/search", params={"q": "mug", "user_id": "nobody"})
    assert response.status_code == 200 and response.json()["user_known"] is False
    assert response.json()["items"] == client.get("/v1/search", params={"q": "mug"}).json()["items"]


def test_personalised_search_moves_the_shoppers_kind_of_item_up(client):
    engine = client.engine
    mugs = [r for r in engine.catalog.records if r.category.endswith("> Mug")]
    brand = mugs[0].brand
    liked = [r for r in engine.catalog.records if r.brand == brand and not r.category.endswith("> Mug")][:6]
    events = [{"user_id": "brand-fan", "item_id": r.item_id, "event_type": "purchase"} for r in liked]
    assert client.post("/v1/events", json={"events": events}, headers=AUTH).status_code == 201
    plain = _search(client, "mug", k=10, user_id="brand-fan", personal_weight=0)
    personal = _search(client, "mug", k=10, user_id="brand-fan", personal_weight=1)
    assert all(i["category"].endswith("> Mug") for i in plain[:3])

    def rank_of_brand(items):
        return min(n for n, item in enumerate(items) if item["brand"] == brand)

    assert rank_of_brand(personal) <= rank_of_brand(plain)
    assert personal[0]["brand"] == brand and personal[0]["reason"]["text"] == 'matches "mug" and your taste'


def test_search_filters_and_bounds(client):
    cheap = _search(client, "headphones", k=10, max_price=150)
    assert cheap and all(i["price"] <= 150 and "Headphones" in i["title"] for i in cheap)
    assert _search(client, "headphones", k=10, max_price=60) == []  # none that cheap: nothing else instead
    assert client.get("/v1/search", params={"q": "mug", "k": 0}).status_code == 422
    assert client.get("/v1/search", params={"q": "x" * 513}).status_code == 422
    assert client.get("/v1/search", params={"q": "mug", "personal_weight": 2}).status_code == 422


def test_a_new_product_is_found_by_its_words_at_once(client):
    body = {"title": "Quokkaberry Saffron Hand Cream", "category": "Beauty > Skincare > Hand Cream", "price": 9.0}
    assert client.put("/v1/items/QB-1", json=body, headers=AUTH).status_code == 200
    assert _search(client, "quokkaberry", k=3)[0]["item_id"] == "QB-1"
    body["title"] = "Wallabyleaf Saffron Hand Cream"  # renamed: the old word no longer finds it
    assert client.put("/v1/items/QB-1", json=body, headers=AUTH).status_code == 200
    assert _search(client, "wallabyleaf", k=3)[0]["item_id"] == "QB-1"
    assert client.engine.text.lexical.scores("quokkaberry").max() == 0


# ------------------------------------------------------------------------------------ profiles
def test_a_profile_describes_the_shopper(client, shop_dataset):
    user = str(shop_dataset.user_ids[3])
    response = client.get(f"/v1/users/{user}/profile")
    assert response.status_code == 200, response.text
    profile = response.json()
    history = client.engine.store.user_events(user)
    activity = profile["activity"]
    assert activity["events"] == len(history) and sum(activity["by_type"].values()) == len(history)
    assert activity["first_seen"] <= activity["last_seen"] and activity["last_seen"].endswith("Z")
    shares = [c["share"] for c in profile["categories"]]
    assert shares == sorted(shares, reverse=True) and 0 < sum(shares) <= 1.0001
    records = {r.item_id: r for r in client.engine.catalog.records}
    touched = {records[e.item_id].category for e in history}
    assert {c["name"] for c in profile["categories"]} <= touched
    assert profile["price_band"]["level"] in {"budget", "mid-range", "premium"}
    assert profile["price_band"]["low"] <= profile["price_band"]["median"] <= profile["price_band"]["high"]
    assert len(profile["keywords"]) == 10
    words = {w for e in history for w in tokenize(records[e.item_id].title + " " + records[e.item_id].category)}
    assert {k["term"] for k in profile["keywords"]} <= words | {w for r in records.values() for w in tokenize(r.tags)}
    intent = profile["recent_intent"]
    assert intent["items"][0]["item_id"] == history[-1].item_id
    assert len({i["item_id"] for i in intent["items"]}) == len(intent["items"])


def test_a_profile_follows_new_events(client):
    records = [r for r in client.engine.catalog.records if r.category.endswith("> Teapot")][:3]
    for n, record in enumerate(records):
        event = {"user_id": "tea-lover", "item_id": record.item_id, "event_type": "purchase", "timestamp": 1e9 + n}
        assert client.post("/v1/events", json=event, headers=AUTH).status_code == 201
    profile = client.get("/v1/users/tea-lover/profile").json()
    assert profile["categories"][0] == {"name": records[0].category, "share": 1.0}
    assert profile["activity"]["by_type"] == {"purchase": 3}
    assert "teapot" in [k["term"] for k in profile["keywords"]][:5]
    assert profile["recent_intent"]["events"] == 3  # seconds apart: one session


def test_an_unknown_shoppers_profile_is_a_404(client):
    response = client.get("/v1/users/nobody/profile")
    assert response.status_code == 404 and response.json()["error"] == "not_found"


def test_the_shopper_list_filters_by_prefix(client, shop_dataset):
    body = client.get("/v1/users", params={"prefix": "u0001", "limit": 5}).json()
    ids = [u["user_id"] for u in body["users"]]
    assert len(ids) == 5 and all(i.startswith("u0001") for i in ids)
    lasts = [u["last_seen"] for u in body["users"]]
    assert lasts == sorted(lasts, reverse=True)
    assert client.get("/v1/users", params={"prefix": "zzz"}).json() == {"users": []}
    assert client.get("/v1/users", params={"limit": 0}).status_code == 422


# ------------------------------------------------------------------------------------ cross-category
def test_cross_category_lists_reach_beyond_the_shoppers_categories(client):
    mugs = [r for r in client.engine.catalog.records if r.category.endswith("> Mug")][:5]
    events = [{"user_id": "mug-fan", "item_id": r.item_id, "event_type": "purchase"} for r in mugs]
    assert client.post("/v1/events", json={"events": events}, headers=AUTH).status_code == 201
    url = "/v1/users/mug-fan/recommendations"
    plain = client.get(url, params={"k": 10}).json()["items"]
    outside = [i for i in plain if i["category"] != mugs[0].category]
    wide = client.get(url, params={"k": 10, "outside_share": 0.5}).json()["items"]
    assert len(wide) == 10 and sum(i["category"] != mugs[0].category for i in wide) >= max(5, len(outside))
    spread = client.get(url, params={"k": 10, "min_categories": 6}).json()["items"]
    assert len({i["category"] for i in spread}) >= 6
    kept = [i["item_id"] for i in wide if i["category"] == mugs[0].category]
    assert kept == [i["item_id"] for i in plain if i["category"] == mugs[0].category][: len(kept)]  # best first
    assert client.get(url, params={"k": 5, "min_categories": 6}).status_code == 422
    assert client.get(url, params={"outside_share": 1.5}).status_code == 422
    body = {"items": [r.item_id for r in mugs], "k": 8, "min_categories": 4}
    anonymous = client.post("/v1/recommendations", json=body).json()["items"]
    assert len({i["category"] for i in anonymous}) >= 4


def test_goes_with_suggests_other_categories(client, shop_dataset):
    item = str(shop_dataset.item_ids[0])
    category = client.engine.catalog.records[client.engine.catalog.index[item]].category
    response = client.get(f"/v1/items/{item}/similar", params={"k": 6, "cross_category": True, "in_stock": False})
    items = response.json()["items"]
    assert len(items) == 6 and all(i["category"] != category for i in items)
    assert all(i["reason"]["kind"] == "goes_with" and i["reason"]["item_id"] == item for i in items)
    same = client.get(f"/v1/items/{item}/similar", params={"k": 6, "in_stock": False}).json()["items"]
    assert any(i["category"] == category for i in same)


def test_cross_category_reranker_meets_its_constraints_at_least_cost():
    from shelfwise.retrieval import cross_category, dominant_categories

    categories = np.array(["a"] * 6 + ["b", "c", "d", "a"])
    ids, scores = np.arange(10), np.linspace(1.0, 0.1, 10)
    assert dominant_categories(["a", "a", "a", "a", "b"], [1, 1, 1, 1, 1]) == {"a"}  # a holds 80%
    assert dominant_categories(["a", "b"], [1, 1], coverage=0.8) == {"a", "b"}
    chosen, kept = cross_category(ids, scores, categories, 4, dominant={"a"}, outside_share=0.5)
    assert chosen.tolist() == [0, 1, 6, 7] and np.all(np.diff(kept) < 0)
    chosen, _ = cross_category(ids, scores, categories, 4, dominant={"a"}, min_categories=3)
    assert chosen.tolist() == [0, 1, 6, 7]
    chosen, _ = cross_category(ids, scores, categories, 4, dominant={"a"}, min_categories=9)
    assert len(chosen) == 4  # cannot be met: still a full list
    assert cross_category(ids, scores, categories, 3, dominant={"a"})[0].tolist() == [0, 1, 2]


# ------------------------------------------------------------------------------------ segments
def test_segments_are_computed_named_served_and_shown_in_profiles(client, shop_dataset):
    assert client.get("/v1/segments").json() == {"segments": []}  # none before the first run
    assert client.post("/v1/admin/segments", json={"k": 4}).status_code == 401
    response = client.post("/v1/admin/segments", json={"k": 4}, headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.json()["criterion"] == {"method": "given", "chosen_k": 4}
    segments = client.get("/v1/segments").json()["segments"]
    assert [s["segment_id"] for s in segments] == [0, 1, 2, 3]
    assert sum(s["size"] for s in segments) == client.engine.store.user_count()
    for seg in segments:
        assert seg["name"] and len(seg["keywords"]) == 5 and seg["categories"][0]["share"] > 0
    assert len({s["name"] for s in segments}) == 4  # names tell the segments apart
    one = client.get("/v1/segments/2", params={"limit": 5}).json()
    assert one["name"] == segments[2]["name"] and len(one["users"]) == min(5, segments[2]["size"])
    user = one["users"][0]
    assert client.get(f"/v1/users/{user}/profile").json()["segment"] == {"segment_id": 2, "name": one["name"]}
    assert client.get("/v1/segments/99").status_code == 404
    assert client.post("/v1/admin/segments", json={"k": 0}, headers=AUTH).status_code == 422


def test_segments_chosen_by_silhouette_say_how(client):
    body = client.post("/v1/admin/segments", headers=AUTH).json()
    criterion = body["criterion"]
    assert criterion["method"] == "silhouette (cosine)"
    best = max(criterion["scores"], key=lambda row: row["silhouette"])
    assert criterion["chosen_k"] == best["k"] and [row["k"] for row in criterion["scores"]] == list(range(2, 13))
    assert len(body["segments"]) == int(criterion["chosen_k"])


def test_kmeans_and_silhouette_find_planted_groups():
    from shelfwise.engine.segments import choose_k, silhouette, spherical_kmeans

    rng = np.random.default_rng(0)
    centres = np.eye(8)[:3]
    points = np.vstack([c + 0.15 * rng.standard_normal((60, 8)) for c in centres])
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    labels, _ = spherical_kmeans(points, 3)
    truth = np.repeat(np.arange(3), 60)
    assert all(len(set(labels[truth == g])) == 1 for g in range(3))  # each group kept whole
    assert choose_k(points, k_range=range(2, 7))[0] == 3
    assert silhouette(points, labels) > 0.5 > silhouette(points, rng.integers(0, 3, len(points)))


# ------------------------------------------------------------------------------------ the page
def test_the_page_and_its_files_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script src="/static/app.js" defer>' in page.text
    script = client.get("/static/app.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert "innerHTML" not in script.text  # API text goes in as text only
    assert client.get("/static/style.css").status_code == 200
    assert client.get("/static/../app.py").status_code == 404


# ------------------------------------------------------------------------------------ pieces
def test_bm25_ranks_rarer_words_higher_and_corrects_spelling():
    index = LexicalIndex()
    index.set(range(3), ["red wool scarf", "red cotton shirt", "blue wool scarf scarf"])
    scores = index.scores("wool")
    assert scores[1] == 0 and scores[0] > 0 and scores[2] > 0
    assert np.argmax(index.scores("red scarf")) == 0  # both words beat one word twice
    assert index.query_terms("Scarff and the cottn") == ["scarf", "cotton"]
    match = index.match("red scarf")
    assert match[0] == pytest.approx(1.0, abs=0.2) and 0 < match[2] < match[0] and match[1] < match[0]
    assert index.match("red unicorn")[0] == pytest.approx(index.match("red")[0] / 2)  # half the words known
    index.set([1], ["green linen shirt"])
    assert index.scores("cotton").max() == 0 and index.scores("linen")[1] > 0
    with pytest.raises(IndexError, match="past the end"):
        index.set([7], ["gap"])
    assert tokenize("Sofá-Bed, 2 pers.") == ["sofa", "bed", "2", "pers"]


def test_fusion_taste_sessions_and_price_bands():
    fused = fuse_search(
        semantic=np.array([0.2, 0.4, 0.3]),
        lexical=np.array([0.0, 0.0, 1.0]),
        affinity=None,
        lexical_weight=0.5,
        personal_weight=0.5,
    )
    assert np.argmax(fused) == 2
    vectors = np.eye(3)
    taste = taste_vector(np.array([0, 1]), ["view", "purchase"], vectors)
    assert taste[1] > taste[0] > 0 and taste_vector(np.array([], dtype=int), [], vectors) is None
    events = [EventRecord("u", "a", "view", t) for t in (0.0, 60.0, 10_000.0, 10_100.0)]
    assert [e.timestamp for e in last_session(events)] == [10_000.0, 10_100.0]
    band = price_band(np.array([10.0, 20.0, np.nan]), np.ones(3), np.arange(1.0, 101.0))
    assert band["level"] == "budget" and band["median"] in (10.0, 20.0)
    assert price_band(np.array([np.nan]), np.ones(1), np.arange(3.0)) is None


def test_interests_list_a_word_once_not_beside_its_plural():
    import numpy as np

    from shelfwise.engine.understanding import nearest_terms

    terms = ["mug", "mugs", "teapot", "boxes", "box", "candy", "candies", "glass"]
    vectors = np.eye(len(terms), dtype=np.float32)
    taste = np.array([0.9, 0.95, 0.5, 0.8, 0.7, 0.3, 0.35, 0.1], dtype=np.float32)
    chosen = [t["term"] for t in nearest_terms(taste, terms, vectors, allowed=None, count=5)]
    assert chosen == ["mugs", "boxes", "teapot", "candies", "glass"]  # each the closer of its twins
