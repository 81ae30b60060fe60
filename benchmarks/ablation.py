"""What the language model and the item IDs each bring to the flagship: `sequential` on every public
data set three times, under the same protocol and splits as accuracy.py:

- ``text+ids``: the shipped model (projected MiniLM text plus an ID embedding, the full blend);
- ``ids``: no language model anywhere (ID embeddings only, no text part in the blend, no text
  neighbours for cold items, which are ranked last);
- ``text``: no item IDs anywhere (projected text only; the blend of the transformer and the text
  profile, without EASE, transitions or trending, which are functions of item IDs).

Each variant is fitted with the configuration the accuracy run chose for the shipped model on the
tuning split (accuracy.json; the defaults where it has none), `item_inputs` aside, and scored on the
test targets, overall, warm and cold. Writes results/ablation.json and the ablation section of
accuracy.md (re-rendered from accuracy.json).

    python benchmarks/ablation.py                     # all four data sets (about half an hour on 2 cores)
    python benchmarks/ablation.py --datasets movielens-100k --resume
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import subprocess
import sys
import time
from pathlib import Path

from common import available_datasets, run_meta, write_results
from shelfwise.data.adapters import KNOWN_DATASETS, load_dataset
from shelfwise.evaluation.runner import evaluate

RESULTS = Path(__file__).resolve().parent / "results"
PARTIAL = Path(__file__).resolve().parent / ".work" / "ablation.partial.jsonl"
VARIANTS = ("text+ids", "ids", "text")
#: Settings of the chosen configuration that a variant does not take over.
NOT_TAKEN = {"item_inputs"}


def chosen_config(dataset: str, out: Path, model: str = "sequential") -> dict:
    """The configuration that accuracy.py chose for `model` (by default the shipped flagship) on
    `dataset`'s tuning split; empty where it has none."""
    path = out / "accuracy.json"
    if not path.is_file():
        return {}
    for record in json.loads(path.read_text())["records"]:
        if record["dataset"] == dataset and record["model"] == model:
            return {k: v for k, v in record["config"].items() if k not in NOT_TAKEN}
    return {}


def _evaluate_one(name: str, protocol: str, params: dict) -> dict:
    """One variant on one data set, in a child process of its own (its own peak memory)."""
    records = evaluate(
        load_dataset(name),
        protocol,
        ["sequential"],
        params={"sequential": params},
        include_analysis=True,
        on_event=lambda message: print("  " + message, flush=True),
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    record = records[0]
    return {
        "dataset": name,
        "protocol": protocol,
        "variant": params["item_inputs"],
        "metrics": record["metrics"],
        "slices": record["analysis"]["slices"],
        "slice_metric": record["analysis"]["slice_metric"],
        "users": record["users"],
        "fit_seconds": record["fit_seconds"],
        "peak_memory_mb": round(peak),
        "config": record["config"],
    }


def section(records: list[dict], content: dict[str, dict] | None = None) -> str:
    """The ablation section of accuracy.md: one table per data set. `content`: ContentKNN's metrics
    per data set (accuracy.json), the plain text-similarity line the cold slice is set against."""
    lines = [
        "## What the language model brings (ablations of `sequential`)",
        "",
        "The flagship three times on the same splits (`python benchmarks/ablation.py`): `text+ids` is the",
        "shipped model; `ids` leaves the language model out everywhere (ID embeddings only, no text part in",
        "the blend, cold items ranked last); `text` leaves item IDs out everywhere (projected MiniLM text only,",
        "the transformer and the text profile without EASE, transitions or trending). Each is fitted with the",
        "configuration chosen for the shipped model on the tuning split, `item_inputs` aside. Warm and cold",
        "are the slices of the protocol: P1, evaluated users whose test item occurs in the fitted data or not",
        "(NDCG@10); P2 (Online Retail), recall@20 pooled over relevant items seen before the cutoff or first",
        "seen after it.",
        "",
    ]
    for dataset in dict.fromkeys(r["dataset"] for r in records):
        rows = {r["variant"]: r for r in records if r["dataset"] == dataset}
        first = next(iter(rows.values()))
        metric = next(iter(first["metrics"]))
        warm_name, cold_name = list(first["slices"])
        lines += [
            f"### {dataset} ({first['protocol'].upper()}, {first['slice_metric']} per slice)",
            "",
            f"| variant | {metric} | {warm_name} | {cold_name} | fit s | peak MB |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for variant in VARIANTS:
            if variant not in rows:
                continue
            row = rows[variant]
            slices = row["slices"]
            lines.append(
                f"| {variant} | {row['metrics'][metric]:.4f} | {slices[warm_name]:.4f} | {slices[cold_name]:.4f} | "
                f"{row['fit_seconds']:.1f} | {row['peak_memory_mb']} |"
            )
        shipped, ids = rows.get("text+ids"), rows.get("ids")
        if shipped and ids and ids["metrics"][metric]:
            change = 100 * (shipped["metrics"][metric] / ids["metrics"][metric] - 1)
            line = f"The language model's share: {metric} {change:+.1f}% over IDs only"
            cold_metric = next((m for m in shipped["metrics"] if m.startswith("cold_")), None)
            reference = (content or {}).get(dataset, {})
            if cold_metric and reference.get(cold_metric):
                ratio = shipped["metrics"][cold_metric] / reference[cold_metric]
                line += f"; {cold_metric} {ratio:.2f}× ContentKNN's ({reference[cold_metric]:.4f})"
            lines += ["", line + "."]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default=",".join(KNOWN_DATASETS))
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--resume", action="store_true", help=f"keep the records a stopped run left in {PARTIAL}")
    args = parser.parse_args(argv)
    datasets = available_datasets(args.datasets)
    if not datasets:
        return 0
    started = time.perf_counter()
    done: dict[tuple[str, str], dict] = {}
    if args.resume and PARTIAL.is_file():
        for line in PARTIAL.read_text().splitlines():
            entry = json.loads(line)
            done[(entry["dataset"], entry["variant"])] = entry
    else:
        PARTIAL.parent.mkdir(parents=True, exist_ok=True)
        PARTIAL.write_text("")
    records = []
    context = multiprocessing.get_context("spawn")
    for name in datasets:
        config = chosen_config(name, args.out)
        for variant in [v for v in args.variants.split(",") if v]:
            if (name, variant) not in done:
                print(f"== {name} {variant}", flush=True)
                params = {**config, "item_inputs": variant}
                with context.Pool(1) as pool:
                    measured = pool.apply(_evaluate_one, (name, KNOWN_DATASETS[name], params))
                with PARTIAL.open("a") as partial:
                    partial.write(json.dumps(measured) + "\n")
                done[(name, variant)] = measured
            records.append(done[(name, variant)])
    meta = run_meta("ablation.py", argv, seconds=time.perf_counter() - started)
    write_results(args.out, "ablation", {"meta": meta, "records": records}, section(records, content_metrics(args.out)))
    accuracy = args.out / "accuracy.json"
    if accuracy.is_file():  # the section in accuracy.md too (a process of its own: accuracy.py imports this module)
        page = Path(__file__).resolve().parent / "accuracy.py"
        subprocess.run([sys.executable, str(page), "--render", "--out", str(args.out)], check=True)
    return 0


def content_metrics(out: Path) -> dict[str, dict]:
    """ContentKNN's test metrics per data set, from accuracy.json (empty where there is none)."""
    path = out / "accuracy.json"
    if not path.is_file():
        return {}
    records = json.loads(path.read_text())["records"]
    return {r["dataset"]: r["metrics"] for r in records if r["model"] == "content"}


if __name__ == "__main__":
    sys.exit(main())
