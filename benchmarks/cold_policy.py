"""How the sequential model's cold-item rule is chosen, on the tuning splits only: for each public data
set, the shipped configuration (accuracy.json's) is fitted on the tuning split's training part; every
cold-item policy its holdout weighs is then scored on the tuning split's validation targets, and so is
the policy each tolerance of the selection rule (`cold.pick_cold_option`) would pick from the holdout.
The test targets are not read.

    python benchmarks/cold_policy.py                     # all four data sets (about ten minutes on 2 cores)
    python benchmarks/cold_policy.py --datasets amazon2018-all-beauty
    python benchmarks/cold_policy.py --text-weights 0,0.5,1,2,4,8 --out /tmp/wider   # another text grid
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ablation import chosen_config
from common import available_datasets, run_meta, write_results
from shelfwise.data.adapters import KNOWN_DATASETS, load_dataset
from shelfwise.evaluation.protocols import Split, make_splits
from shelfwise.evaluation.runner import score_split
from shelfwise.models.base import Recommender
from shelfwise.models.content import ContentKNN
from shelfwise.models.sequential import cold as cold_module
from shelfwise.models.sequential import model as sequential_model
from shelfwise.models.sequential.cold import ColdOption, pick_cold_option
from shelfwise.models.sequential.model import SequentialRecommender

RESULTS = Path(__file__).resolve().parent / "results"
TOLERANCES = (0.0, 0.0025, 0.005, 0.01, 0.02)


def study(name: str) -> dict[str, Any]:
    """Fit on the tuning split, keep the holdout's options, score each on the validation targets."""
    protocol = KNOWN_DATASETS[name]
    split = make_splits(load_dataset(name), protocol)["tune"]
    captured: dict[str, Any] = {}
    weigh = sequential_model.cold_options

    def capture(*args: Any) -> tuple[list[ColdOption], np.ndarray]:
        captured["options"], captured["cold_rows"] = weigh(*args)
        return captured["options"], captured["cold_rows"]

    sequential_model.cold_options = capture  # type: ignore[assignment]
    try:
        model = SequentialRecommender(**chosen_config(name, RESULTS))  # item_inputs: the shipped default
        started = time.perf_counter()
        model.fit(split.train)
        fit_seconds = time.perf_counter() - started
    finally:
        sequential_model.cold_options = weigh  # type: ignore[assignment]
    options = captured.get("options", [])
    shipped = model.cold_
    rows = []
    for option in options:
        model.cold_ = option.policy
        model._set_cold_neighbours()
        rows.append(
            {
                "policy": vars(option.policy),
                "holdout": [option.ndcg, option.cold_ndcg],
                "validation": score_split(model, split),
            }
        )
    model.cold_ = shipped
    model._set_cold_neighbours()
    against = against_content(model, split, name) if split.cold_users is not None else None
    picks = {str(t): options.index(pick_cold_option(options, t)) for t in TOLERANCES} if options else {}
    return {
        "dataset": name,
        "protocol": protocol,
        "k": split.k,
        "validation_users": len(split.users),
        "holdout_cold_rows": int(captured["cold_rows"].sum()) if "cold_rows" in captured else 0,
        "fit_seconds": round(fit_seconds, 1),
        "options": rows,
        "picks": picks,
        "against_content": against,
    }


def _top_hits(model: Recommender, split: Split, rows: np.ndarray) -> np.ndarray:
    """Whether each of `rows`' validation targets is in the model's top K."""
    ids, _ = model.recommend(split.users[rows], split.k, candidates=split.candidates)
    return np.array([bool(np.isin(split.targets[r], found).any()) for r, found in zip(rows, ids, strict=True)])


def against_content(model: SequentialRecommender, split: Split, name: str) -> dict[str, Any]:
    """On the validation shoppers whose target is cold (P1): ContentKNN's top-K hits, and how many of
    them the shipped model (its cold policy as picked) also has in its top K, and the reverse."""
    content = ContentKNN(**chosen_config(name, RESULTS, model="content"))
    content.fit(split.train)
    rows = np.flatnonzero(split.cold_users)
    text_hits, model_hits = _top_hits(content, split, rows), _top_hits(model, split, rows)
    metric = f"cold_ndcg@{split.k}"
    return {
        "cold_users": len(rows),
        "content_config": content.get_params(),
        "content": score_split(content, split)[metric],
        "shipped": score_split(model, split)[metric],
        "content_hits": int(text_hits.sum()),
        "both_hits": int((text_hits & model_hits).sum()),
        "shipped_only_hits": int((model_hits & ~text_hits).sum()),
    }


def _cold_metric(record: dict) -> str:
    return f"cold_ndcg@{record['k']}" if record["protocol"] == "p1" else f"cold_recall@{record['k']}"


def summary(records: list[dict]) -> list[str]:
    """Each tolerance's mean over the data sets of the validation figures, relative to tolerance 0's."""
    measured = [r for r in records if r["options"]]
    if not measured:
        return []
    lines = [
        "Mean over the data sets, relative to tolerance 0 (overall; cold slice, where tolerance 0's is not 0):",
        "",
    ]
    for tolerance in TOLERANCES:
        overall, cold = [], []
        for record in measured:
            k, cold_metric = record["k"], _cold_metric(record)
            picked = record["options"][record["picks"][str(tolerance)]]["validation"]
            plain = record["options"][record["picks"][str(TOLERANCES[0])]]["validation"]
            overall.append(picked[f"ndcg@{k}"] / plain[f"ndcg@{k}"])
            if plain[cold_metric]:
                cold.append(picked[cold_metric] / plain[cold_metric])
        cold_text = f"{sum(cold) / len(cold):.3f}" if cold else "n/a"
        lines.append(f"- tolerance {tolerance:g}: overall ×{sum(overall) / len(overall):.4f}, cold ×{cold_text}")
    return lines


def versus_content(records: list[dict]) -> list[str]:
    """The shipped pick against ContentKNN on the validation's cold shoppers (P1 sets)."""
    rows = [r for r in records if r.get("against_content")]
    if not rows:
        return []
    lines = [
        "Against plain text similarity, on the validation shoppers whose target is cold (P1; ContentKNN as",
        "accuracy.py tuned it, fitted on the same training part). Top-K hits: the cold shoppers whose target",
        "ContentKNN has in its top K; how many of those the shipped pick has too; and hits ContentKNN misses.",
        "",
        "| data set | cold shoppers | ContentKNN cold NDCG | shipped cold NDCG | ratio | ContentKNN hits | "
        "shipped has them too | shipped's other hits |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for record in rows:
        a = record["against_content"]
        ratio = f"{a['shipped'] / a['content']:.2f}×" if a["content"] else "n/a"
        lines.append(
            f"| {record['dataset']} | {a['cold_users']} | {a['content']:.4f} | {a['shipped']:.4f} | {ratio} | "
            f"{a['content_hits']} | {a['both_hits']} | {a['shipped_only_hits']} |"
        )
    return lines


def markdown(records: list[dict], meta: dict) -> str:
    lines = [
        "# The cold-item rule, chosen on the tuning splits",
        "",
        f"{meta['date']}, {meta['cores']} cores, `{meta['command']}`.",
        "",
        "Each data set's shipped configuration (accuracy.json) is fitted on its tuning split's training part.",
        "The fit's holdout weighs every cold-item policy (neighbours, factor, own text weight); the rule",
        "picks the best on the holdout's cold slice among those within a tolerance of the best holdout NDCG.",
        "Each column below is what that tolerance would pick, scored on the tuning split's validation targets.",
        "The test targets are not read.",
        f"The own text weights tried: {', '.join(f'{w:g}' for w in meta['text_weights'])}.",
        "",
    ]
    header = "| data set | metric | " + " | ".join(f"tol {t:g}" for t in TOLERANCES) + " | best option on validation |"
    lines += [header, "|---|---|" + "---:|" * (len(TOLERANCES) + 1)]
    for record in records:
        if not record["options"]:
            lines.append(f"| {record['dataset']} | no cold target in the holdout | " + " | " * len(TOLERANCES))
            continue
        k = record["k"]
        for metric in (f"ndcg@{k}", _cold_metric(record)):
            values = [record["options"][record["picks"][str(t)]]["validation"][metric] for t in TOLERANCES]
            best = max(option["validation"][metric] for option in record["options"])
            lines.append(
                f"| {record['dataset']} | {metric} | " + " | ".join(f"{v:.4f}" for v in values) + f" | {best:.4f} |"
            )
        policies = [record["options"][record["picks"][str(t)]]["policy"] for t in TOLERANCES]
        lines.append(
            f"| {record['dataset']} | policy (neighbours, factor, text) | "
            + " | ".join(f"{p['neighbours']}, {p['factor']:g}, {p['text']:g}" for p in policies)
            + " | |"
        )
    lines += ["", *summary(records), "", *versus_content(records)]
    lines += [
        "",
        "Per data set: validation users, the holdout's shoppers with a cold target, the fit's seconds.",
        "",
    ]
    for record in records:
        lines.append(
            f"- {record['dataset']} ({record['protocol'].upper()}): {record['validation_users']} validation users, "
            f"{record['holdout_cold_rows']} holdout shoppers with a cold target, fit {record['fit_seconds']} s."
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default=",".join(KNOWN_DATASETS))
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--text-weights",
        default=",".join(f"{w:g}" for w in cold_module.COLD_TEXT_WEIGHTS),
        help="the cold items' own text weights the holdout weighs (default: the model's)",
    )
    args = parser.parse_args(argv)
    cold_module.COLD_TEXT_WEIGHTS = tuple(float(w) for w in args.text_weights.split(","))
    names = available_datasets(args.datasets)
    if not names:
        return 0
    records = []
    for name in names:
        print(f"== {name}", flush=True)
        records.append(study(name))
    meta = run_meta("cold_policy.py", argv, text_weights=list(cold_module.COLD_TEXT_WEIGHTS))
    write_results(args.out, "cold_policy", {"meta": meta, "records": records}, markdown(records, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
