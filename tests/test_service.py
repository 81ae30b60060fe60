"""The HTTP service, driven over HTTP (FastAPI's test client) against SQLite and PostgreSQL."""

import shutil
import threading

import pytest
from fastapi.testclient import TestClient

from shelfwise.data.dataset import Dataset
from shelfwise.engine import Engine
from shelfwise.errors import ConfigError
from shelfwise.models import create_model
from shelfwise.service import create_app
from shelfwise.settings import load_settings

KEY = "test-key-0123456789abcdefghijklmnopqrstuv"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
def service(store_url, trained_model_dir, tmp_path):
    model_dir = shutil.copytree(trained_model_dir, tmp_path / "model")
    engine = Engine(model_dir, store_url)
    app = create_app(engine, load_settings(max_batch=50, max_body_bytes=20_000), api_key=KEY)
    with TestClient(app) as client:
        client.engine = engine
        client.model_dir = model_dir
        yield client
    engine.close()


def _ids(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["item_id"] for item in response.json()["items"]]


def _shopper(shop_dataset) -> str:
    return str(shop_dataset.user_ids[3])


def test_an_event_changes_the_shoppers_next_list(service, shop_dataset):
    user = _shopper(shop_dataset)
    first = _ids(service.get(f"/v1/users/{user}/recommendations?k=10"))
    assert len(first) == 10
    response = service.post(
        "/v1/events", json={"user_id": user, "item_id": first[0], "event_type": "purchase"}, headers=AUTH
    )
    assert response.status_code == 201 and response.json() == {"recorded": 1, "duplicates": 0}
    second = _ids(service.get(f"/v1/users/{user}/recommendations?k=10"))
    assert first[0] not in second  # bought: excluded at once, no refit
    assert second != first
    reasons = service.get(f"/v1/users/{user}/recommendations?k=10").json()["items"]
    assert all(r["reason"]["text"] for r in reasons)


def newcomers_list(service, user: str) -> list[str]:
    """The shopper's list, asserting it is the one every newcomer gets: 200, flagged unknown, the
    most popular items (as an anonymous session without events gets them)."""
    response = service.get(f"/v1/users/{user}/recommendations?k=10")
    assert response.status_code == 200 and response.json()["user_known"] is False, response.text
    popular = service.post("/v1/recommendations?k=10", json={"items": []}).json()["items"]
    ids = [item["item_id"] for item in response.json()["items"]]
    assert ids == [item["item_id"] for item in popular] and len(ids) == 10
    return ids


def test_a_new_shopper_gets_the_popular_list_then_their_own_after_their_first_events(service, shop_dataset):
    first = newcomers_list(service, "newcomer")
    arrivals = service.get("/v1/users/newcomer/new-arrivals?days=3650")
    assert arrivals.status_code == 200 and arrivals.json()["user_known"] is False
    search = service.get("/v1/search", params={"q": "mug", "user_id": "newcomer"})
    assert search.status_code == 200 and search.json()["user_known"] is False
    assert search.json()["items"] == service.get("/v1/search", params={"q": "mug"}).json()["items"]
    items = [str(i) for i in shop_dataset.item_ids[:3]]
    batch = {"events": [{"user_id": "newcomer", "item_id": i, "event_type": "view"} for i in items]}
    assert service.post("/v1/events", json=batch, headers=AUTH).json() == {"recorded": 3, "duplicates": 0}
    own = service.get("/v1/users/newcomer/recommendations?k=10").json()
    assert own["user_known"] is True and [item["item_id"] for item in own["items"]] != first


def test_a_new_item_is_recommended_at_once_to_a_shopper_whose_history_matches_it(service, shop_dataset):
    items = shop_dataset.items
    category = items["category"].iloc[0]
    same = items.loc[items["category"] == category].head(4)
    events = [{"user_id": "fan", "item_id": str(i), "event_type": "purchase"} for i in same["item_id"]]
    assert service.post("/v1/events", json={"events": events}, headers=AUTH).status_code == 201
    model = same.iloc[0]
    body = {
        "title": f"{model['title']} 2027 edition",
        "description": model["description"],
        "category": category,
        "brand": model["brand"],
        "price": 19.5,
        "tags": ["new"],
    }
    response = service.put("/v1/items/BRAND-NEW", json=body, headers=AUTH)
    assert response.status_code == 200 and response.json() == {"created": 1, "updated": 0}
    answer = service.get("/v1/users/fan/recommendations?k=10").json()["items"]
    found = [item for item in answer if item["item_id"] == "BRAND-NEW"]
    assert found, [item["item_id"] for item in answer]
    assert found[0]["reason"]["kind"] == "new"
    assert "BRAND-NEW" in _ids(service.get(f"/v1/items/{same['item_id'].iloc[1]}/similar?k=5"))
    # out of stock takes effect at once
    body["in_stock"] = False
    assert service.put("/v1/items/BRAND-NEW", json=body, headers=AUTH).json() == {"created": 0, "updated": 1}
    assert "BRAND-NEW" not in _ids(service.get("/v1/users/fan/recommendations?k=10"))
    assert "BRAND-NEW" in _ids(service.get("/v1/users/fan/recommendations?k=10&in_stock=false"))


def test_deleting_a_shopper_removes_every_trace(service, shop_dataset):
    user = _shopper(shop_dataset)
    assert service.get(f"/v1/users/{user}/recommendations").status_code == 200
    response = service.delete(f"/v1/users/{user}", headers=AUTH)
    assert response.status_code == 200, response.text
    removed = response.json()["removed"]
    assert removed["store_events"] > 0 and removed["store_profile"] == 1
    assert removed["training_events"] > 0 and removed["model_state"] == 1
    newcomers_list(service, user)  # a deleted shopper is a newcomer again
    assert service.delete(f"/v1/users/{user}", headers=AUTH).status_code == 404
    engine = service.engine
    assert engine.store.user_events(user) == [] and not engine.store.has_user(user)
    scrubbed = Dataset.load(service.model_dir / "dataset")
    assert user not in set(scrubbed.user_ids)
    index = int(shop_dataset.user_index(user))
    assert (scrubbed.interactions["user"] != index).all()
    assert engine.model.user_items_[index].nnz == 0


def test_anonymous_sessions_by_items_or_events(service, shop_dataset):
    items = [str(i) for i in shop_dataset.item_ids[10:13]]
    by_items = _ids(service.post("/v1/recommendations", json={"items": items, "k": 5}))
    events = [{"item_id": i, "event_type": "view"} for i in items]
    by_events = _ids(service.post("/v1/recommendations", json={"events": events, "k": 5}))
    assert len(by_items) == 5 and by_items == by_events
    cheap = service.post("/v1/recommendations", json={"items": items, "k": 5, "max_price": 20}).json()["items"]
    assert all(item["price"] is not None and item["price"] <= 20 for item in cheap)


@pytest.mark.parametrize(
    ("method", "url", "body", "status", "field"),
    [
        ("get", "/v1/users/u00003/recommendations?k=0", None, 422, "query.k"),
        ("get", "/v1/users/u00003/recommendations?k=abc", None, 422, "query.k"),
        ("get", "/v1/users/u00003/recommendations?diversity=2", None, 422, "query.diversity"),
        ("get", "/v1/users/u00003/recommendations?min_price=-1", None, 422, "query.min_price"),
        ("get", "/v1/users/u00003/recommendations?min_price=9&max_price=1", None, 422, "max_price"),
        ("get", "/v1/users/u00003/recommendations?exclude_purchased=maybe", None, 422, "query.exclude_purchased"),
        ("get", "/v1/items/nothing/similar", None, 404, "nothing"),
        ("get", "/v1/items/SKU-00001/similar?k=100000", None, 422, "query.k"),
        ("post", "/v1/events", {"user_id": "u", "item_id": "SKU-00001", "event_type": "stare"}, 422, "event_type"),
        ("post", "/v1/events", {"user_id": "", "item_id": "SKU-00001"}, 422, "body.user_id"),
        ("post", "/v1/events", {"user_id": "u", "item_id": "ghost"}, 404, "ghost"),
        ("post", "/v1/events", {"user_id": "u", "item_id": "SKU-00001", "timestamp": "yesterday"}, 422, "timestamp"),
        ("post", "/v1/events", {"user_id": "u", "item_id": "SKU-00001", "value": "lots"}, 422, "value"),
        ("post", "/v1/events", {"user_id": "u", "item_id": "SKU-00001", "colour": "red"}, 422, "colour"),
        ("post", "/v1/events", {"events": []}, 422, "events"),
        ("post", "/v1/events", {"events": [{"user_id": "u", "item_id": "x"}] * 51}, 422, "at most 50"),
        ("post", "/v1/events", "not json", 422, "body"),
        ("put", "/v1/items/x1", {"price": -3}, 422, "body.price"),
        ("put", "/v1/items/x1", {"in_stock": "perhaps"}, 422, "body.in_stock"),
        ("put", "/v1/items/x1", {"created_at": "soon"}, 422, "body.created_at"),
        ("put", "/v1/items", {"items": [{"item_id": "a"}, {"item_id": "a"}]}, 422, "more than once"),
        ("post", "/v1/recommendations", {"k": 5}, 422, "exactly one"),
        ("post", "/v1/recommendations", {"items": ["ghost"]}, 404, "items[0]"),
        ("post", "/v1/admin/reload", {"model_dir": "/nonexistent"}, 422, "config.json"),
    ],
)
def test_bad_input_gets_a_4xx_that_names_the_field(service, method, url, body, status, field):
    if isinstance(body, str):
        response = service.request(method, url, content=body, headers={**AUTH, "content-type": "application/json"})
    else:
        response = service.request(method, url, json=body, headers=AUTH)
    assert response.status_code == status, response.text
    assert field in response.json()["message"], response.json()


def test_a_failed_batch_stores_nothing(service):
    before = service.engine.store.event_count()
    batch = {"events": [{"user_id": "u", "item_id": "SKU-00001"}, {"user_id": "u", "item_id": "ghost"}]}
    response = service.post("/v1/events", json=batch, headers=AUTH)
    assert response.status_code == 404 and "events[1].item_id" in response.json()["message"]
    assert service.engine.store.event_count() == before


@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        ("post", "/v1/events", {"user_id": "u", "item_id": "SKU-00001"}),
        ("put", "/v1/items/x", {"title": "x"}),
        ("put", "/v1/items", {"items": [{"item_id": "x"}]}),
        ("delete", "/v1/users/u00003", None),
        ("post", "/v1/admin/reload", {}),
    ],
)
def test_writes_need_the_key(service, method, url, body):
    for headers in ({}, {"Authorization": "Bearer wrong-key"}, {"Authorization": KEY}):
        response = service.request(method, url, json=body, headers=headers)
        assert response.status_code == 401, (headers, response.text)
    assert service.engine.store.has_user("u00003")


def test_body_over_the_limit_is_refused(service):
    big = {"user_id": "u", "item_id": "SKU-00001", "event_type": "view" + " " * 30_000}
    response = service.post("/v1/events", json=big, headers=AUTH)
    assert response.status_code == 413 and "limit" in response.json()["message"]


def test_reads_can_require_the_key(trained_model_dir, tmp_path):
    engine = Engine(shutil.copytree(trained_model_dir, tmp_path / "m"), f"sqlite:///{tmp_path / 's.db'}")
    app = create_app(engine, load_settings(read_auth=True), api_key=KEY)
    with TestClient(app) as client:
        assert client.get("/v1/users/u00003/recommendations").status_code == 401
        assert client.get("/v1/users/u00003/recommendations", headers=AUTH).status_code == 200
        assert client.get("/healthz").status_code == 200


def test_placeholder_keys_are_refused_in_production(trained_model_dir, tmp_path):
    engine = Engine(shutil.copytree(trained_model_dir, tmp_path / "m"), f"sqlite:///{tmp_path / 's.db'}")
    for key in ("", "changeme", "short"):
        with pytest.raises(ConfigError, match="SHELFWISE_API_KEY"):
            create_app(engine, load_settings(environment="production"), api_key=key)
    assert create_app(engine, load_settings(environment="production"), api_key=KEY).state.api_key == KEY
    generated = create_app(engine, load_settings(), api_key="").state.api_key
    assert len(generated) >= 32  # development without a key: a random one, never an open door


def test_health_metrics_and_openapi(service, shop_dataset):
    service.get(f"/v1/users/{_shopper(shop_dataset)}/recommendations")
    assert service.get("/healthz").json() == {"status": "ok"}  # nothing more for anyone
    assert service.get("/v1/admin/status").status_code == 401
    health = service.get("/v1/admin/status", headers=AUTH).json()
    assert health["status"] == "ok" and health["model"] == "ease" and health["schema_version"] >= 4
    assert health["model_dir"] == str(service.model_dir)
    assert service.get("/v1/model").json()["model_version"] == health["model_version"]
    text = service.get("/metrics").text
    assert 'shelfwise_requests_total{method="GET",route="/v1/users/{user_id}/recommendations",status="200"}' in text
    assert f'version="{health["model_version"]}"' in text
    assert "shelfwise_request_seconds_bucket" in text
    paths = service.get("/openapi.json").json()["paths"]
    assert {"/v1/events", "/v1/recommendations", "/v1/items/{item_id}/similar"} <= set(paths)


def test_model_hot_swap_drops_no_request(service, shop_dataset, tmp_path):
    new_dir = tmp_path / "als"
    create_model("als", factors=16, iterations=5).fit(shop_dataset).save(new_dir)
    shop_dataset.save(new_dir / "dataset")
    user = _shopper(shop_dataset)
    statuses: list[int] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            statuses.append(service.get(f"/v1/users/{user}/recommendations?k=5").status_code)

    reader = threading.Thread(target=read)
    reader.start()
    before = service.get("/v1/model").json()["model_version"]
    response = service.post("/v1/admin/reload", json={"model_dir": str(new_dir)}, headers=AUTH)
    stop.set()
    reader.join()
    assert response.status_code == 200, response.text
    assert response.json()["model"] == "als" and response.json()["model_version"] != before
    assert statuses and set(statuses) == {200}
    assert service.get("/v1/model").json()["model"] == "als"
    assert 'model="als"' in service.get("/metrics").text


def test_engine_with_an_hnsw_index_finds_a_new_items_twin(trained_model_dir, tmp_path, shop_dataset):
    from shelfwise.store import ItemRecord

    engine = Engine(shutil.copytree(trained_model_dir, tmp_path / "m"), f"sqlite:///{tmp_path / 's.db'}", index="hnsw")
    original = engine.catalog.records[5]
    twin = ItemRecord("TWIN", original.title, original.description, original.category, original.brand, 9.0)
    assert engine.upsert_items([twin]) == {"created": 1, "updated": 0}
    assert engine.similar("TWIN", 3)[0].item_id == original.item_id
    engine.close()


def test_times_without_an_offset_are_utc(service):
    body = {"user_id": "clock", "item_id": "SKU-00001", "timestamp": "2026-01-02T03:04:05"}
    assert service.post("/v1/events", json=body, headers=AUTH).status_code == 201
    assert service.engine.store.user_events("clock")[0].timestamp == 1767323045.0


def test_goes_with_has_nothing_for_an_item_without_a_category(service):
    """With no category of its own, no other category can be told apart: an empty list, not
    whatever items happen to have one."""
    body = {"title": "Plain ceramic mug with a wide handle", "description": "a mug"}
    assert service.put("/v1/items/NO-CATEGORY", json=body, headers=AUTH).status_code == 200
    assert _ids(service.get("/v1/items/NO-CATEGORY/similar?cross_category=true")) == []
    assert _ids(service.get("/v1/items/NO-CATEGORY/similar"))  # similar items still come
    others = service.get("/v1/items/SKU-00001/similar?cross_category=true&k=20").json()["items"]
    assert others and all(item["category"] for item in others)


def test_ready_means_ready_and_health_stays_the_liveness_check(service, monkeypatch):
    engine = service.engine
    assert engine.wait_until_text_ready(timeout=60)
    assert service.get("/readyz").json() == {"status": "ready", "waiting_for": []}
    monkeypatch.setattr(engine, "wait_until_text_ready", lambda timeout=None: False)  # the encoder still loading
    loading = service.get("/readyz")
    assert loading.status_code == 503 and loading.json() == {"status": "starting", "waiting_for": ["encoder"]}
    assert service.get("/healthz").status_code == 200  # alive all the same: not to be restarted

    def down() -> int:
        raise OSError("the store went away")

    monkeypatch.setattr(engine.store, "user_count", down)
    both = service.get("/readyz")
    assert both.status_code == 503 and both.json()["waiting_for"] == ["store", "encoder"]
    assert service.get("/healthz").status_code == 503


def test_scoped_keys_post_events_or_read_and_nothing_more(trained_model_dir, tmp_path):
    events_key, read_key = "events-key-0123456789abcdefghijklmnopq", "read-key-0123456789abcdefghijklmnopqrs"
    engine = Engine(shutil.copytree(trained_model_dir, tmp_path / "m"), f"sqlite:///{tmp_path / 's.db'}")
    settings = load_settings(read_auth=True, events_key=events_key, read_key=read_key, currency="GBP")
    with TestClient(create_app(engine, settings, api_key=KEY)) as client:
        as_events = {"Authorization": f"Bearer {events_key}"}
        as_reader = {"Authorization": f"Bearer {read_key}"}
        event = {"user_id": "u00003", "item_id": "SKU-00001", "event_type": "view"}
        assert client.post("/v1/events", json=event, headers=as_events).status_code == 201
        assert client.post("/v1/events", json=event, headers=as_reader).status_code == 401
        assert client.put("/v1/items/NEW", json={"title": "x"}, headers=as_events).status_code == 401
        assert client.post("/v1/admin/reload", headers=as_events).status_code == 401
        assert client.get("/v1/admin/status", headers=as_reader).status_code == 401
        assert client.get("/v1/users/u00003/recommendations", headers=as_events).status_code == 401
        assert client.get("/v1/users/u00003/recommendations", headers=as_reader).status_code == 200
        assert client.get("/v1/users/u00003/recommendations", headers=AUTH).status_code == 200
        assert client.post("/v1/events", json=event, headers=AUTH).status_code == 201
        assert client.get("/v1/page-config").json() == {"events_key": events_key, "currency": "GBP"}  # a page's
    with TestClient(create_app(engine, load_settings(), api_key=KEY)) as client:
        assert client.get("/v1/page-config").json() == {"events_key": None, "currency": None}
    with pytest.raises(ConfigError, match="SHELFWISE_CURRENCY"):
        create_app(engine, load_settings(currency="pounds"), api_key=KEY)
    for weak in ("changeme", "short"):
        with pytest.raises(ConfigError, match="SHELFWISE_EVENTS_KEY"):
            create_app(engine, load_settings(environment="production", events_key=weak), api_key=KEY)
    with pytest.raises(ConfigError, match="must differ"):
        create_app(engine, load_settings(read_key=KEY), api_key=KEY)
    engine.close()
