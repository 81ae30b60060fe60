"""Published sequential transformers as peers: RecTools' SASRec and BERT4Rec under PROTOCOLS.md.

Runs in its own virtual environment, because RecTools pins versions that clash with shelfwise's own
(numpy 1.x, pandas 2.3, a fork of implicit); `accuracy.py` calls it in the same run:

    python3 -m venv benchmarks/.work/peers
    benchmarks/.work/peers/bin/pip install -c constraints.txt 'rectools[torch]'
    benchmarks/.work/peers/bin/pip install --no-deps -e .
    benchmarks/.work/peers/bin/pip install -c constraints.txt 'pyarrow<19' threadpoolctl typer rich safetensors
    benchmarks/.work/peers/bin/python benchmarks/peers.py --out benchmarks/results/peers.json

The splits, candidates and metrics are shelfwise's (the same code the accuracy benchmark scores
with); RecTools sees the fitted interactions of each split in time order and ranks the candidate
items for the evaluated users with their history filtered out. A small grid (epochs) is searched
on the tuning split, as for every other model.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from shelfwise.data.adapters import KNOWN_DATASETS, load_dataset
from shelfwise.evaluation import make_splits
from shelfwise.evaluation.metrics import ndcg_at_k, recall_at_k

GRIDS = {
    "rectools-sasrec": ({"epochs": 5}, {"epochs": 15}),
    "rectools-bert4rec": ({"epochs": 5}, {"epochs": 15}),
}
COMMON = {"n_factors": 64, "n_blocks": 2, "n_heads": 2, "session_max_len": 50, "batch_size": 128, "lr": 1e-3}


def _model(name: str, params: dict, seed: int):
    from rectools.models import BERT4RecModel, SASRecModel

    cls = SASRecModel if name == "rectools-sasrec" else BERT4RecModel
    options = {**COMMON, **params}
    return cls(**options, deterministic=True, recommend_torch_device="cpu", verbose=0), options


def _rectools_dataset(split):
    from rectools import Columns
    from rectools.dataset import Dataset as RTDataset

    rows = split.train.interactions
    order = np.lexsort((rows["order"].to_numpy(), rows["timestamp"].to_numpy()))
    frame = pd.DataFrame(
        {
            Columns.User: rows["user"].to_numpy()[order],
            Columns.Item: rows["item"].to_numpy()[order],
            Columns.Weight: 1.0,
            # a pseudo-time: the (timestamp, file order) rank, so ties keep the source order
            Columns.Datetime: pd.Timestamp("2000-01-01") + pd.to_timedelta(np.arange(len(order)), unit="s"),
        }
    )
    return RTDataset.construct(frame)


def _score(name: str, params: dict, split, seed: int) -> tuple[dict, float, dict]:
    import torch

    torch.manual_seed(seed)
    dataset = _rectools_dataset(split)
    model, options = _model(name, params, seed)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(dataset)
    fit_seconds = time.perf_counter() - started
    known = set(dataset.user_id_map.external_ids.tolist())
    users = [int(u) for u in split.users if int(u) in known]
    candidates = np.flatnonzero(split.candidates)
    known_items = np.intersect1d(candidates, dataset.item_id_map.external_ids)
    recs = model.recommend(
        users, dataset, k=split.k, filter_viewed=True, items_to_recommend=known_items, on_unsupported_targets="warn"
    )
    ranked = np.full((len(split.users), split.k), -1, dtype=np.int64)
    position = {int(u): row for row, u in enumerate(split.users)}
    for user, group in recs.groupby("user_id"):
        items = group.sort_values("rank")["item_id"].to_numpy()[: split.k]
        ranked[position[int(user)], : len(items)] = items
    ndcg = ndcg_at_k(ranked, split.targets, split.k)
    recall = recall_at_k(ranked, split.targets, split.k)
    k = split.k
    metrics = {f"ndcg@{k}": float(ndcg.mean()), f"recall@{k}": float(recall.mean())}
    if split.cold_users is not None and split.cold_users.any():
        metrics[f"cold_ndcg@{k}"] = float(ndcg[split.cold_users].mean())
        metrics[f"cold_recall@{k}"] = float(recall[split.cold_users].mean())
    return metrics, fit_seconds, options


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="online-retail-uci,amazon2018-all-beauty,movielens-latest-small")
    parser.add_argument("--models", default=",".join(GRIDS))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    records = []
    for name in [d for d in args.datasets.split(",") if d]:
        dataset = load_dataset(name)
        protocol = KNOWN_DATASETS[name]
        splits = make_splits(dataset, protocol)
        for model in [m for m in args.models.split(",") if m]:
            trials = []
            for params in GRIDS[model]:
                metrics, _, _ = _score(model, params, splits["tune"], args.seed)
                trials.append((params, metrics[f"ndcg@{splits['tune'].k}"]))
                print(f"{name} {model} tune {params}: {trials[-1][1]:.4f}", flush=True)
            best = max(range(len(trials)), key=lambda i: (trials[i][1], -i))
            metrics, fit_seconds, options = _score(model, trials[best][0], splits["test"], args.seed)
            print(f"{name} {model} test: {metrics}", flush=True)
            records.append(
                {
                    "dataset": dataset.name,
                    "protocol": protocol,
                    "model": model,
                    "metrics": {k: round(v, 6) for k, v in metrics.items()},
                    "users": len(splits["test"].users),
                    "fit_seconds": round(fit_seconds, 3),
                    "config": options,
                    "tuning": [{"params": p, f"ndcg@{splits['tune'].k}": round(v, 6)} for p, v in trials],
                    "peak_memory_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                }
            )
            args.out.write_text(json.dumps({"records": records}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
