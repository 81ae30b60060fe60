import numpy as np
import pandas as pd
import pytest

from shelfwise.data.cleaning import clean_text, drop_duplicate_events, k_core, resolve_event_weights
from shelfwise.data.dataset import Dataset
from shelfwise.errors import ConfigError, UnknownIdError

from .conftest import frame


def test_indices_follow_id_order_and_lookups(tiny_dataset):
    assert tiny_dataset.item_ids.tolist() == ["a", "b", "c", "d", "e"]
    assert tiny_dataset.user_ids.tolist() == ["u1", "u2", "u3", "u4"]
    assert tiny_dataset.item_index(["c", "a"]).tolist() == [2, 0]
    assert tiny_dataset.user_index("u3") == 2
    with pytest.raises(UnknownIdError, match="Unknown item id"):
        tiny_dataset.item_index(["a", "zzz"])


def test_matrix_weights_and_sequences(tiny_dataset):
    matrix = tiny_dataset.user_items()
    weights = tiny_dataset.event_weights
    assert matrix[1, 1] == pytest.approx(weights["view"] + weights["purchase"])
    assert tiny_dataset.user_items(binary=True)[1, 1] == 1.0
    assert tiny_dataset.sequences()[1].tolist() == [0, 1, 1, 4]
    assert tiny_dataset.sequences()[2].tolist() == [0, 2]  # equal times: file order


def test_save_and_load_round_trip(tmp_path, shop_dataset):
    shop_dataset.save(tmp_path / "ds")
    loaded = Dataset.load(tmp_path / "ds")
    assert loaded.user_ids.tolist() == shop_dataset.user_ids.tolist()
    pd.testing.assert_frame_equal(loaded.interactions, shop_dataset.interactions, check_categorical=False)
    assert loaded.items["tags"].tolist() == shop_dataset.items["tags"].tolist()
    assert (loaded.user_items() != shop_dataset.user_items()).nnz == 0
    assert loaded.items["created_at"].equals(shop_dataset.items["created_at"])


def test_to_frames_rebuilds_the_same_data_set(shop_dataset):
    events, items = shop_dataset.to_frames()
    rebuilt = Dataset.from_frames(events, items)
    assert (rebuilt.user_items() != shop_dataset.user_items()).nnz == 0


def test_catalog_items_without_events_are_kept_or_dropped():
    events = frame([("u1", "a", "view", "2024-01-01")])
    items = pd.DataFrame({"item_id": ["a", "new"], "title": ["A", "New thing"]})
    assert Dataset.from_frames(events, items).n_items == 2
    assert Dataset.from_frames(events, items, keep_items_without_events=False).n_items == 1


def test_cleaning_helpers():
    assert clean_text("  <b>Hi</b>&amp;&nbsp;bye ") == "Hi & bye"
    assert clean_text("Empty description", empty_markers=("Empty description",)) is None
    events = frame(
        [("u1", "a", "view", "2024-01-01"), ("u1", "a", "view", "2024-01-01"), ("u1", "a", "cart", "2024-01-01")]
    )
    deduped, removed = drop_duplicate_events(events)
    assert removed == 1 and len(deduped) == 2
    with pytest.raises(ConfigError, match="Unknown event type 'like'"):
        resolve_event_weights({"like": 1.0})
    with pytest.raises(ConfigError, match="finite number"):
        resolve_event_weights({"view": -1.0})


def test_k_core_is_iterative():
    rows = [
        ("u1", "a", "view", "2024-01-01"),
        ("u1", "b", "view", "2024-01-01"),
        ("u2", "a", "view", "2024-01-01"),
        ("u2", "b", "view", "2024-01-01"),
        ("u3", "a", "view", "2024-01-01"),
        ("u3", "c", "view", "2024-01-01"),
    ]
    kept = k_core(frame(rows), min_user_items=2, min_item_users=2)
    # c has one user -> dropped, then u3 has one item -> dropped
    assert sorted(set(kept["user_id"])) == ["u1", "u2"]
    assert sorted(set(kept["item_id"])) == ["a", "b"]
    assert np.all(kept.groupby("user_id").size() >= 2)
