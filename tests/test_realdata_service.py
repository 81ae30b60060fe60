"""Search, profiles, segments and cross-category over HTTP on a real data set (MovieLens 100K)."""

import pytest
from fastapi.testclient import TestClient

from shelfwise.data.adapters import load_dataset
from shelfwise.engine import Engine
from shelfwise.models import create_model
from shelfwise.service import create_app
from shelfwise.settings import load_settings

from .conftest import require_dataset

pytestmark = [pytest.mark.realdata, pytest.mark.slow]
KEY = "realdata-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def movies(tmp_path_factory):
    folder = require_dataset("movielens-100k")
    dataset = load_dataset(folder)
    out = tmp_path_factory.mktemp("movies")
    create_model("ease", regularization=100.0).fit(dataset).save(out / "model")
    dataset.save(out / "model" / "dataset")
    engine = Engine(out / "model", f"sqlite:///{out / 'store.db'}")
    with TestClient(create_app(engine, load_settings(), api_key=KEY)) as client:
        client.engine = engine
        client.dataset = dataset
        yield client
    engine.close()


def _titles(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["title"] for item in response.json()["items"]]


def test_search_finds_films_by_title_through_typos_and_by_other_words(movies):
    assert "Star Wars (1977)" in _titles(movies.get("/v1/search", params={"q": "star wars", "k": 3}))
    assert "Star Wars (1977)" in _titles(movies.get("/v1/search", params={"q": "stra wras", "k": 5}))
    assert "Toy Story (1995)" in _titles(movies.get("/v1/search", params={"q": "toy storey", "k": 5}))
    assert len(_titles(movies.get("/v1/search", params={"q": "la guerre des étoiles", "k": 5}))) == 5
    assert movies.get("/v1/search", params={"q": ""}).status_code == 400


def test_personalised_search_follows_the_shoppers_genres(movies):
    # a shopper who only watched horror films: "dead" should lean to horror among its many matches
    horror = movies.dataset.items.loc[movies.dataset.items["category"] == "Horror", "item_id"].astype(str).tolist()
    events = [{"user_id": "horror-fan", "item_id": item, "event_type": "rating"} for item in horror[:15]]
    assert movies.post("/v1/events", json={"events": events}, headers=AUTH).status_code == 201
    plain = movies.get("/v1/search", params={"q": "dead", "k": 8}).json()["items"]
    params = {"q": "dead", "k": 8, "user_id": "horror-fan", "personal_weight": 1.0}
    personal = movies.get("/v1/search", params=params).json()["items"]
    assert sum(i["category"] == "Horror" for i in personal) > sum(i["category"] == "Horror" for i in plain)


def test_a_real_shoppers_profile_and_segments(movies):
    user = str(movies.dataset.user_ids[0])
    profile = movies.get(f"/v1/users/{user}/profile").json()
    assert profile["activity"]["events"] == int((movies.dataset.interactions["user"] == 0).sum())
    assert profile["categories"][0]["share"] > 0 and len(profile["keywords"]) == 10
    assert movies.get("/v1/users/nobody/profile").status_code == 404
    body = movies.post("/v1/admin/segments", json={"k": 5}, headers=AUTH).json()
    assert sum(s["size"] for s in body["segments"]) == movies.engine.store.user_count()
    assert movies.get(f"/v1/users/{user}/profile").json()["segment"]["segment_id"] in range(5)


def test_cross_category_and_goes_with_on_real_genres(movies):
    user = str(movies.dataset.user_ids[0])
    plain = movies.get(f"/v1/users/{user}/recommendations", params={"k": 10}).json()["items"]
    wide = movies.get(f"/v1/users/{user}/recommendations", params={"k": 10, "min_categories": 6}).json()["items"]
    assert len({i["category"] for i in wide}) >= max(6, len({i["category"] for i in plain}))
    item = str(movies.dataset.item_ids[0])
    own = movies.get(f"/v1/items/{item}").json()["category"]
    goes = movies.get(f"/v1/items/{item}/similar", params={"k": 5, "cross_category": True}).json()["items"]
    assert len(goes) == 5 and all(i["category"] != own for i in goes)


def test_no_history_and_unknown_shoppers(movies):
    popular = movies.post("/v1/recommendations", json={"items": [], "k": 5}).json()["items"]
    assert len(popular) == 5 and popular[0]["reason"]["kind"] == "popular"
    # a shopper the store has no event of gets what every newcomer gets, flagged: never a 404
    nobody = movies.get("/v1/users/nobody/recommendations?k=5").json()
    assert nobody["user_known"] is False and nobody["items"] == popular
    for path, params in (("/v1/users/nobody/new-arrivals", {}), ("/v1/search", {"q": "alien", "user_id": "nobody"})):
        response = movies.get(path, params=params)
        assert response.status_code == 200 and response.json()["user_known"] is False
