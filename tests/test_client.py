"""A Python client generated from the service's OpenAPI document (openapi-python-client) works: its
enum of event types has one member per canonical type, its functions are named by the operation ids
(get_user_recommendations, post_events, ...), and it reads and writes through the real app."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from shelfwise.data.schema import EVENT_TYPES
from shelfwise.engine import Engine
from shelfwise.service import create_app
from shelfwise.settings import load_settings

KEY = "client-key-0123456789abcdefghijklmnopqrstuvw"


@pytest.fixture
def service(trained_model_dir, tmp_path):
    model_dir = shutil.copytree(trained_model_dir, tmp_path / "model")
    engine = Engine(model_dir, f"sqlite:///{tmp_path / 'store.db'}")
    with TestClient(create_app(engine, load_settings(), api_key=KEY)) as client:
        yield client
    engine.close()


def generate(spec: dict, folder: Path) -> None:
    """`openapi-python-client generate` of `spec` into the package `folder`, with no warning."""
    binaries = Path(sys.executable).parent
    tool = shutil.which("openapi-python-client", path=str(binaries))
    if tool is None:
        pytest.fail("openapi-python-client is not installed; install the dev extra: pip install -e '.[dev]'")
    (folder.parent / "openapi.json").write_text(json.dumps(spec))
    command = [tool, "generate", "--path", "openapi.json", "--output-path", str(folder), "--meta", "none"]
    env = {**os.environ, "PATH": f"{binaries}{os.pathsep}{os.environ.get('PATH', '')}"}  # it formats with ruff
    result = subprocess.run(command, cwd=folder.parent, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0 and "Warning" not in result.stdout, result.stdout + result.stderr


def test_a_generated_client_reads_and_writes_through_the_service(service, shop_dataset, tmp_path):
    spec = service.get("/openapi.json").json()
    operations = {op["operationId"] for path in spec["paths"].values() for op in path.values()}
    assert {"get_user_recommendations", "post_events", "get_similar_items", "search", "get_model"} <= operations
    generate(spec, tmp_path / "shelfwise_client")
    sys.path.insert(0, str(tmp_path))
    try:
        from shelfwise_client import AuthenticatedClient
        from shelfwise_client.api.events import post_events
        from shelfwise_client.api.recommend import get_user_recommendations
        from shelfwise_client.models import EventIn, EventInEventType

        assert sorted(member.value for member in EventInEventType) == sorted(EVENT_TYPES)
        # the generated client sends through the app's test client (which carries the key it would send)
        service.headers["Authorization"] = f"Bearer {KEY}"
        client = AuthenticatedClient(base_url="http://testserver", token=KEY)
        client.set_httpx_client(service)
        user = str(shop_dataset.user_ids[3])
        before = get_user_recommendations.sync(user_id=user, client=client, k=5)
        assert [r.item_id for r in before.items] == [
            r["item_id"] for r in service.get(f"/v1/users/{user}/recommendations?k=5").json()["items"]
        ]
        event = EventIn(user_id=user, item_id=before.items[0].item_id, event_type=EventInEventType.PURCHASE)
        assert post_events.sync(client=client, body=event).recorded == 1
        after = get_user_recommendations.sync(user_id=user, client=client, k=5)
        assert before.items[0].item_id not in [r.item_id for r in after.items]  # bought: left out at once
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m == "shelfwise_client" or m.startswith("shelfwise_client.")]:
            del sys.modules[name]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_documentation_pages_load_every_asset_from_the_service_itself(service, page):
    import re

    html = service.get(page)
    assert html.status_code == 200 and "text/html" in html.headers["content-type"]
    urls = re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", html.text)
    assets = [url for url in urls if not url.startswith("/openapi.json")]
    assert assets and all(url.startswith("/docs-assets/") for url in assets), urls  # no CDN
    for url in assets:
        assert service.get(url).status_code == 200, url
