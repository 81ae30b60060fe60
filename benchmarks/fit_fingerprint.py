"""A fingerprint of the sequential model's fit on each public data set, to check that a change to
its code leaves what it learns exactly as it was.

Each set is fitted with a fixed seed and a fixed number of epochs (2, with no time budget to cut
them short, so the machine's speed cannot change the result), on the set's own CPU threads; the
fingerprint is the SHA-256 of the scores of the first 300 shoppers, of 50 shoppers' scores after
their history less its last item, of the item table and of the blend weights, with the blend and
cold-item policy the fit chose. Run it before and after a change, on the same machine (floating
point sums differ between machines), and compare the two results files:

    python benchmarks/fit_fingerprint.py --out /tmp/before      # at the old commit
    python benchmarks/fit_fingerprint.py                        # -> results/fit_fingerprint.md
"""

from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path

import numpy as np

from common import available_datasets, run_meta, write_results
from shelfwise.data.adapters import load_dataset
from shelfwise.models import SequentialRecommender

RESULTS = Path(__file__).resolve().parent / "results"
#: Each set's settings beside the defaults: Online Retail as its tuning split chose (a temporal
#: holdout with a prior for new items), so that path is fingerprinted too.
CASES = {
    "amazon2018-all-beauty": {},
    "movielens-100k": {},
    "online-retail-uci": {"holdout": "temporal", "cold_offset": 1.0},
    "movielens-latest-small": {},
}


def fingerprint(name: str, cache_dir: str | None) -> dict:
    started = time.perf_counter()
    data = load_dataset(name)
    model = SequentialRecommender(epochs=2, patience=5, max_seconds=1e5, cache_dir=cache_dir, **CASES[name])
    model.fit(data)
    users = np.arange(min(300, data.n_users))
    arrays = {
        "scores": model.score(users),
        "after_history_less_last": model.score_histories([model.sequences_[u][:-1] for u in users[:50]]),
        "item_table": model.item_table_,
        "blend_weights": model.weights_,
    }
    digest = hashlib.sha256(b"".join(np.ascontiguousarray(a).tobytes() for a in arrays.values())).hexdigest()
    return {
        "sha256": digest,
        "parts": {k: hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16] for k, a in arrays.items()},
        "blend": model.training_log_["blend"],
        "cold_items": model.training_log_["cold_items"],
        "seconds": round(time.perf_counter() - started, 1),
    }


def markdown(payload: dict) -> str:
    """The page of one run's fingerprints."""
    lines = [
        "# Fingerprint of the sequential model's fit",
        "",
        f"Measured {payload['meta']['date']} on {payload['meta']['machine']} ({payload['meta']['cores']} cores), "
        f"Python {payload['meta']['python']}, by `{payload['meta']['command'].strip()}`.",
        "",
        "Fixed seed, 2 epochs, no time budget. Equal fingerprints on one machine: the same fit, bit for bit.",
        "Compare fingerprints measured on the same machine only: on 2026-12-06 the same code gave another",
        "network, bit for bit, on another machine (every item table and score differed; every blend weight",
        "and cold-item choice was the same), and the full fits' figures moved by up to 0.001 NDCG.",
        "",
        "| data set | sha256 (first 16) | blend (transformer, ease, text, transitions, trending) | cold items | s |",
        "|---|---|---|---|---:|",
    ]
    for name, row in payload["results"].items():
        blend = ", ".join(f"{v:g}" for v in row["blend"].values())
        cold = ", ".join(f"{k} {v:g}" for k, v in row["cold_items"].items())
        lines.append(f"| {name} | `{row['sha256'][:16]}` | {blend} | {cold} | {row['seconds']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default=",".join(CASES))
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--cache-dir", default=None, help="embedding cache (text vectors are then encoded once)")
    args = parser.parse_args(argv)
    results = {}
    for name in available_datasets(args.datasets):
        results[name] = fingerprint(name, args.cache_dir)
        print(name, results[name]["sha256"][:16], results[name]["blend"], flush=True)
    payload = {"meta": run_meta("fit_fingerprint.py", argv), "results": results}
    write_results(args.out, "fit_fingerprint", payload, markdown(payload))


if __name__ == "__main__":
    main()
