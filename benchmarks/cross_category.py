"""Cross-category benchmark: the category coverage the cross-category options buy, and their NDCG cost.

On the data sets with categories (MovieLens: the first genre of each film is its category), EASE is
tuned on the tuning split (its own grid), fitted on the fitted data of the P1 test split, and each
evaluated shopper's top 200 (history removed) is re-ranked by the engine's re-ranker
(`retrieval.cross_category`, with the shopper's dominant categories from their fitted history, as
the service computes them). Reported per setting: NDCG@10 and Recall@10, the mean number of distinct
categories in a list, the mean share of a list outside the shopper's dominant categories, and the
share of all categories that appear in some list.

    python benchmarks/cross_category.py
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from common import available_datasets, run_meta, write_results
from shelfwise.data.adapters import KNOWN_DATASETS, load_dataset
from shelfwise.data.schema import DEFAULT_EVENT_WEIGHTS
from shelfwise.evaluation import make_splits
from shelfwise.evaluation.metrics import ndcg_at_k, recall_at_k
from shelfwise.evaluation.runner import tune
from shelfwise.models import create_model
from shelfwise.retrieval import cross_category, dominant_categories

RESULTS = Path(__file__).resolve().parent / "results"
DATASETS = ("movielens-latest-small", "movielens-100k")
DEPTH = 200
SETTINGS = (
    {},
    {"min_categories": 3},
    {"min_categories": 5},
    {"outside_share": 0.2},
    {"outside_share": 0.3},
    {"outside_share": 0.5},
)


def run_dataset(name: str) -> dict:
    started = time.perf_counter()
    dataset = load_dataset(name)
    protocol = KNOWN_DATASETS[name]
    k = 10
    splits = make_splits(dataset, protocol)
    chosen = tune("ease", splits["tune"]).best_params
    split = splits["test"]
    model = create_model("ease", **chosen).fit(split.train)
    ids, scores = model.recommend(split.users, DEPTH, candidates=split.candidates)
    categories = dataset.items["category"].fillna("").astype(str).str.casefold().to_numpy(dtype=object)
    all_categories = {c for c in categories if c}
    sequences = split.train.sequences()
    dominant = []
    for user in split.users:
        history = sequences[int(user)]
        weights = [DEFAULT_EVENT_WEIGHTS.get("view", 1.0)] * len(history)
        dominant.append(dominant_categories([categories[i] for i in history], weights))
    rows = []
    for setting in SETTINGS:
        lists = np.full((len(split.users), k), -1, dtype=np.int64)
        for row in range(len(split.users)):
            valid = ids[row] >= 0
            picked, _ = cross_category(
                ids[row][valid], scores[row][valid], categories, k, dominant=dominant[row], **setting
            )
            lists[row, : len(picked)] = picked
        shown = [[categories[i] for i in lst if i >= 0] for lst in lists]
        distinct = np.mean([len(set(c)) for c in shown])
        outside = np.mean(
            [np.mean([c not in dom for c in cats]) if cats else 0.0 for cats, dom in zip(shown, dominant, strict=True)]
        )
        coverage = len({c for cats in shown for c in cats if c}) / max(len(all_categories), 1)
        rows.append(
            {
                "setting": setting,
                "ndcg@10": float(ndcg_at_k(lists, split.targets, k).mean()),
                "recall@10": float(recall_at_k(lists, split.targets, k).mean()),
                "categories_per_list": float(distinct),
                "outside_share": float(outside),
                "category_coverage": float(coverage),
            }
        )
        print(f"  {name} {setting or 'plain'}: {rows[-1]}", flush=True)
    return {
        "dataset": name,
        "protocol": protocol,
        "users": len(split.users),
        "categories": len(all_categories),
        "model": {"name": "ease", **chosen},
        "rows": rows,
        "seconds": time.perf_counter() - started,
    }


def markdown(records: list[dict], meta: dict) -> str:
    lines = [
        "# Cross-category benchmark",
        "",
        f"Measured {meta['date']} on {meta['machine']} ({meta['cores']} cores), Python {meta['python']}, "
        f"by `{meta['command']}` in {meta['seconds']:.0f} s.",
        "",
        "EASE (tuned on the tuning split) ranks each evaluated shopper's top 200 on the P1 test split; the",
        "engine's cross-category re-ranker then builds the list of 10. `min_categories`: the list spans at",
        "least that many categories; `outside_share`: at least that share of it lies outside the shopper's",
        "dominant categories (those holding 80% of their fitted history). Categories are MovieLens' first",
        "genre. Columns: NDCG@10 and its change against the plain list, distinct categories per list, share",
        "of the list outside the dominant categories, share of all categories shown in some list.",
        "",
    ]
    for record in records:
        model = ", ".join(f"{k}={v}" for k, v in record["model"].items() if k != "name")
        lines += [
            f"## {record['dataset']} ({record['users']} shoppers, {record['categories']} categories; EASE {model})",
            "",
            "| setting | NDCG@10 | ΔNDCG | Recall@10 | categories per list | outside share | category coverage |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        base = record["rows"][0]["ndcg@10"]
        for row in record["rows"]:
            name = ", ".join(f"{k}={v}" for k, v in row["setting"].items()) or "plain"
            change = (row["ndcg@10"] - base) / base if base else 0.0
            lines.append(
                f"| {name} | {row['ndcg@10']:.4f} | {change:+.1%} | {row['recall@10']:.4f} | "
                f"{row['categories_per_list']:.2f} | {row['outside_share']:.1%} | {row['category_coverage']:.1%} |"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    records = [run_dataset(name) for name in available_datasets(args.datasets)]
    if not records:
        return 0
    meta = run_meta("cross_category.py", argv, seconds=time.perf_counter() - started)
    write_results(args.out, "cross_category", {"meta": meta, "records": records}, markdown(records, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
