"""Record the golden answers: `python tests/golden/build.py` (from the repository root).

Trains `sequential` and `als` on a small synthetic shop once, writes each model folder (with its data
set; no serving artifacts, which the engine builds at start: they are build outputs, kept untracked)
under tests/golden/models/, replays `golden_requests.requests_for` against each
through the HTTP app over a fresh SQLite store, and writes the answers to tests/golden/answers.json.
`tests/test_golden.py` replays the same requests on the same committed folders and compares. Run it
again only when a change of answers is intended, and say so in the commit.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODELS = {
    "sequential": {"dim": 32, "layers": 1, "heads": 2, "max_len": 20, "epochs": 6, "patience": 6, "max_seconds": 600.0},
    "als": {"factors": 32, "iterations": 10},
}


def replay(model_dir: Path, store_dir: Path) -> list[dict]:
    """Every request of `golden_requests.requests_for` against the app serving `model_dir`; the answers."""
    from fastapi.testclient import TestClient

    from shelfwise.data.dataset import Dataset
    from shelfwise.engine import Engine
    from shelfwise.service import create_app
    from shelfwise.settings import load_settings

    sys.path.insert(0, str(HERE))
    from golden_requests import AUTH, KEY, requests_for

    work = Path(shutil.copytree(model_dir, store_dir / "model"))
    engine = Engine(work, f"sqlite:///{store_dir / 'store.db'}")
    answers = []
    try:
        with TestClient(create_app(engine, load_settings(), api_key=KEY)) as client:
            for request in requests_for(Dataset.load(work / "dataset")):
                response = client.request(request["method"], request["path"], json=request.get("json"), headers=AUTH)
                body = response.json()
                answers.append({"name": request["name"], "status": response.status_code, "body": body})
    finally:
        engine.close()
    return answers


def main() -> None:
    from shelfwise.data.dataset import Dataset
    from shelfwise.data.synthetic import generate_shop
    from shelfwise.models import create_model

    shop = generate_shop(n_items=300, n_users=250, days=28, seed=7)
    dataset = Dataset.from_frames(shop.events, shop.items, name="golden-shop")
    recorded = {}
    for name, params in MODELS.items():
        folder = HERE / "models" / name
        shutil.rmtree(folder, ignore_errors=True)
        create_model(name, **params).fit(dataset).save(folder)
        dataset.save(folder / "dataset")
        with tempfile.TemporaryDirectory() as tmp:
            recorded[name] = replay(folder, Path(tmp))
    (HERE / "answers.json").write_text(json.dumps(recorded, indent=1, sort_keys=True) + "\n")
    print(f"wrote {HERE / 'answers.json'}")


if __name__ == "__main__":
    main()
