"""Shared fixtures: small data built once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from shelfwise.data.dataset import Dataset
from shelfwise.data.synthetic import generate_shop
from shelfwise.settings import load_settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session", autouse=True)
def _isolated_home(tmp_path_factory):
    """Caches and settings of the tests live in a temporary home, never in the user's."""
    home = tmp_path_factory.mktemp("shelfwise-home")
    previous = os.environ.get("SHELFWISE_HOME")
    os.environ["SHELFWISE_HOME"] = str(home)
    yield home
    if previous is None:
        os.environ.pop("SHELFWISE_HOME", None)
    else:
        os.environ["SHELFWISE_HOME"] = previous


def shared_data_dir() -> Path:
    return load_settings().data_dir


def require_dataset(name: str) -> Path:
    """The folder of a public data set, or skip the test saying where it was looked for."""
    folder = shared_data_dir() / name
    if not folder.is_dir():
        pytest.skip(f"data set {name!r} not found at {folder} (set SHELFWISE_DATA_DIR to its parent folder)")
    return folder


@pytest.fixture(scope="session")
def shop():
    return generate_shop(n_items=300, n_users=250, days=28, seed=7)


@pytest.fixture(scope="session")
def shop_dataset(shop) -> Dataset:
    return Dataset.from_frames(shop.events, shop.items, name="test-shop")


def frame(rows: list[tuple], columns=("user_id", "item_id", "event_type", "timestamp")) -> pd.DataFrame:
    events = pd.DataFrame(rows, columns=list(columns))
    events["timestamp"] = pd.to_datetime(events["timestamp"], utc=True)
    if "value" not in events.columns:
        events["value"] = float("nan")
    return events


@pytest.fixture
def tiny_dataset() -> Dataset:
    """Four users, five items, hand-made, with known order and ties in time."""
    rows = [
        ("u1", "a", "purchase", "2024-01-01"),
        ("u1", "b", "purchase", "2024-01-02"),
        ("u1", "c", "purchase", "2024-01-03"),
        ("u1", "d", "purchase", "2024-01-04"),
        ("u2", "a", "purchase", "2024-01-01"),
        ("u2", "b", "view", "2024-01-02"),
        ("u2", "b", "purchase", "2024-01-05"),  # repeat pair: dropped by dedup, earliest kept
        ("u2", "e", "purchase", "2024-01-06"),
        ("u3", "a", "purchase", "2024-01-01"),
        ("u3", "c", "purchase", "2024-01-01"),  # same time as the row above: file order decides
        ("u4", "e", "purchase", "2024-01-03"),
    ]
    return Dataset.from_frames(frame(rows), name="tiny")


PG_URL = os.environ.get("SHELFWISE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def _postgres_problem() -> str | None:
    try:
        import psycopg

        with psycopg.connect(PG_URL, connect_timeout=3):
            return None
    except Exception as exc:  # any failure means: skip, with the reason
        return f"PostgreSQL at {PG_URL} is not reachable ({type(exc).__name__}: {exc}); set SHELFWISE_TEST_POSTGRES"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """A fresh, empty store of each backend (PostgreSQL: a schema of its own, dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    problem = _postgres_problem()
    if problem:
        pytest.skip(problem)
    import uuid

    import psycopg

    schema = f"shelfwise_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(scope="session")
def trained_model_dir(tmp_path_factory, shop_dataset) -> Path:
    """An EASE model folder as `shelfwise train` writes it (copy it before changing it)."""
    from shelfwise.models import create_model

    folder = tmp_path_factory.mktemp("model") / "ease"
    create_model("ease", regularization=50.0).fit(shop_dataset).save(folder)
    shop_dataset.save(folder / "dataset")
    return folder
