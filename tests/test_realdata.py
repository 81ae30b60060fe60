"""Checks on the public data sets (skipped where ../shared/data is absent).

`reference_popularity_*` re-implement PROTOCOLS.md's popularity baseline from the raw files with the
standard library only (no shelfwise code), so they check our loaders, splits and metrics end to end.
"""

from __future__ import annotations

import csv
import gzip
import math
import re
import shutil
import tempfile
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import pytest

from shelfwise.data.adapters import load_dataset, load_online_retail
from shelfwise.evaluation import evaluate

from .conftest import require_dataset

pytestmark = pytest.mark.realdata


def _rows(path):
    with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
        yield from csv.DictReader(handle)


def _rank_popularity(train: dict[str, list[str]], candidates: set[str]) -> list[str]:
    users_per_item: dict[str, set[str]] = defaultdict(set)
    for user, items in train.items():
        for item in items:
            users_per_item[item].add(user)
    return sorted(candidates, key=lambda item: (-len(users_per_item.get(item, ())), item))


def _score(ranking, history, relevant, k):
    ndcgs, recalls = [], []
    for user, targets in relevant.items():
        seen = set(history.get(user, ()))
        top = []
        for item in ranking:
            if item not in seen:
                top.append(item)
                if len(top) == k:
                    break
        dcg = sum(1 / math.log2(i + 2) for i, item in enumerate(top) if item in targets)
        idcg = sum(1 / math.log2(i + 2) for i in range(min(k, len(targets))))
        ndcgs.append(dcg / idcg)
        recalls.append(len(set(top) & targets) / len(targets))
    return sum(ndcgs) / len(ndcgs), sum(recalls) / len(recalls)


def _leave_last_out(sequences: dict[str, list[str]], k: int = 10):
    train, relevant = {}, {}
    candidates = set()
    for user, items in sequences.items():
        distinct = list(dict.fromkeys(items))
        candidates.update(distinct)
        if len(distinct) >= 3:
            train[user] = distinct[:-1]
            relevant[user] = {distinct[-1]}
        else:
            train[user] = distinct
    return _score(_rank_popularity(train, candidates), train, relevant, k)


def reference_popularity_amazon(folder):
    rows = _rows(folder / "interactions.csv.gz")
    sequences: dict[str, list[tuple[int, int, str]]] = defaultdict(list)
    for position, row in enumerate(rows):
        sequences[row["user_id"]].append((int(row["seq_pos"]), position, row["item_id"]))
    return _leave_last_out({u: [item for *_, item in sorted(v)] for u, v in sequences.items()})


def reference_popularity_movielens(folder):
    rows = _rows(folder / "ratings.csv.gz")
    sequences: dict[str, list[tuple[int, int, str]]] = defaultdict(list)
    for position, row in enumerate(rows):
        sequences[row["userId"]].append((int(row["timestamp"]), position, row["movieId"]))
    return _leave_last_out({u: [item for *_, item in sorted(v)] for u, v in sequences.items()})


def reference_popularity_retail(folder, k: int = 20):
    code = re.compile(r"^[0-9]{5}[A-Za-z]*$")
    cutoff = datetime(2011, 11, 9)
    first_seen: dict[tuple[str, str], tuple[datetime, int]] = {}
    item_first: dict[str, datetime] = {}
    rows = _rows(folder / "online_retail.csv.gz")
    for position, row in enumerate(rows):
        if not row["CustomerID"] or row["InvoiceNo"].startswith("C"):
            continue
        if int(row["Quantity"]) <= 0 or float(row["UnitPrice"]) <= 0 or not code.match(row["StockCode"]):
            continue
        when = datetime.strptime(row["InvoiceDate"], "%Y-%m-%d %H:%M:%S")
        key = (str(int(row["CustomerID"])), row["StockCode"])
        if key not in first_seen or (when, position) < first_seen[key]:
            first_seen[key] = (when, position)
        item_first[row["StockCode"]] = min(when, item_first.get(row["StockCode"], when))
    train: dict[str, list[str]] = defaultdict(list)
    after: dict[str, set[str]] = defaultdict(set)
    for (user, item), (when, _) in first_seen.items():
        (train[user].append(item) if when < cutoff else after[user].add(item))
    relevant = {u: items for u, items in after.items() if u in train}
    ranking = _rank_popularity(train, set(item_first))
    ndcg, recall = _score(ranking, train, relevant, k)
    return ndcg, recall


@pytest.mark.parametrize(
    ("name", "protocol", "reference"),
    [
        ("amazon2018-all-beauty", "p1", reference_popularity_amazon),
        ("movielens-latest-small", "p1", reference_popularity_movielens),
        ("online-retail-uci", "p2", reference_popularity_retail),
    ],
)
def test_popularity_matches_an_independent_implementation(name, protocol, reference):
    folder = require_dataset(name)
    expected_ndcg, expected_recall = reference(folder)
    record = evaluate(load_dataset(folder), protocol, ["popularity"], tuned=False)[0]
    k = 10 if protocol == "p1" else 20
    assert round(record["metrics"][f"ndcg@{k}"], 4) == round(expected_ndcg, 4)
    assert round(record["metrics"][f"recall@{k}"], 4) == round(expected_recall, 4)


def test_retail_parquet_and_csv_agree():
    folder = require_dataset("online-retail-uci")
    from_parquet = load_dataset(folder)

    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(folder / "online_retail.csv.gz", Path(tmp) / "online_retail.csv.gz")
        from_csv = load_online_retail(tmp)
    assert from_csv.n_interactions == from_parquet.n_interactions
    assert (from_csv.user_items() != from_parquet.user_items()).nnz == 0
    assert from_csv.items["title"].tolist() == from_parquet.items["title"].tolist()


@pytest.mark.parametrize(
    ("name", "protocol", "minimum"),
    [("amazon2018-all-beauty", "p1", 0.414), ("online-retail-uci", "p2", 0.0934)],
)
def test_ease_reaches_ninety_percent_of_the_public_reference(name, protocol, minimum):
    folder = require_dataset(name)
    record = evaluate(load_dataset(folder), protocol, ["ease"], tuned=False)[0]
    k = 10 if protocol == "p1" else 20
    assert record["metrics"][f"ndcg@{k}"] >= minimum


def test_movielens_100k_loads_with_its_genres():
    folder = require_dataset("movielens-100k")
    dataset = load_dataset(folder)
    assert (dataset.n_users, dataset.n_items, dataset.n_interactions) == (943, 1682, 100000)
    toy_story = dataset.items.set_index("item_id").loc["1"]
    assert toy_story["title"] == "Toy Story (1995)" and "Animation" in toy_story["tags"]
