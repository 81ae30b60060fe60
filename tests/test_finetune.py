import numpy as np

from shelfwise.cli import main
from shelfwise.data.dataset import Dataset
from shelfwise.text import create_encoder
from shelfwise.text.finetune import cointeraction_pairs

from .conftest import frame


def test_pairs_are_close_in_time_within_one_shopper():
    rows = [
        ("u1", "a", "view", "2024-01-01"),
        ("u1", "b", "view", "2024-01-02"),
        ("u1", "c", "view", "2024-03-01"),  # two months later: too far from b
        ("u2", "c", "view", "2024-01-01"),
        ("u2", "d", "view", "2024-01-01"),
        ("u3", "e", "view", "2024-01-01"),
    ]
    dataset = Dataset.from_frames(frame(rows))
    texts = ["apple", "banana", "cherry", "date", "elder"]
    pairs = cointeraction_pairs(dataset, texts, window=2, max_gap_days=7)
    named = sorted(tuple(sorted(dataset.item_ids[p])) for p in pairs)
    assert named == [("a", "b"), ("c", "d")]
    texts[3] = ""  # an item without text never forms a pair
    assert sorted(tuple(sorted(dataset.item_ids[p])) for p in cointeraction_pairs(dataset, texts)) == [("a", "b")]


def test_pairs_cap_each_item():
    rows = [(f"u{i}", "hit", "view", "2024-01-01") for i in range(50)]
    rows += [(f"u{i}", f"x{i}", "view", "2024-01-02") for i in range(50)]
    dataset = Dataset.from_frames(frame(rows))
    pairs = cointeraction_pairs(dataset, ["text"] * dataset.n_items, max_per_item=5)
    hit = dataset.item_index("hit")
    assert len(pairs) == 5 and np.all((pairs == hit).sum(axis=1) == 1)


def test_finetune_command_writes_a_model_that_encodes(tmp_path, shop_dataset, capsys):
    shop_dataset.save(tmp_path / "shop")
    out = tmp_path / "tuned"
    code = main(
        [
            "finetune-encoder",
            "--data",
            str(tmp_path / "shop"),
            "--protocol",
            "p1",
            "--out",
            str(out),
            "--max-pairs",
            "48",
            "--batch-size",
            "16",
            "--max-seconds",
            "120",
        ]
    )
    assert code == 0
    assert "fine-tuned on 48 pairs in 3 steps" in capsys.readouterr().out
    tuned = create_encoder(str(out))
    base = create_encoder()
    texts = ["a cosy knitted scarf", "a steel chef knife"]
    tuned_vectors, base_vectors = tuned.encode(texts), base.encode(texts)
    assert tuned_vectors.shape == (2, 384)
    np.testing.assert_allclose(np.linalg.norm(tuned_vectors, axis=1), 1.0, rtol=1e-5)
    assert not np.allclose(tuned_vectors, base_vectors)
    assert tuned.name != base.name and str(out.name) in tuned.name
