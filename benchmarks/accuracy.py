"""Accuracy benchmark: every model on the four public data sets under PROTOCOLS.md.

Each model's grid is searched on the tuning split; the chosen configuration is then fitted on the
fitted data and scored on the test targets. Writes benchmarks/results/accuracy.md and accuracy.json.

    python benchmarks/accuracy.py                      # everything (about an hour on 2 cores)
    python benchmarks/accuracy.py --datasets amazon2018-all-beauty --models popularity,ease --no-peers

Each (data set, model) runs in a child process of its own, so its peak memory (max RSS) is its own.
The published peers (RecTools SASRec and BERT4Rec, `peers.py`) run in the same run from their own
virtual environment at benchmarks/.work/peers when it exists; the results file says so when not.
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

import numpy as np

from common import available_datasets, run_meta, write_results
from shelfwise.data.adapters import KNOWN_DATASETS, load_dataset
from shelfwise.evaluation.report import phase_summary
from shelfwise.evaluation.runner import evaluate
from shelfwise.models import BASELINES

RESULTS = Path(__file__).resolve().parent / "results"
PEERS_PYTHON = Path(__file__).resolve().parent / ".work" / "peers" / "bin" / "python"
#: Records of the (data set, model) pairs finished so far, one JSON line each (for --resume).
PARTIAL = Path(__file__).resolve().parent / ".work" / "accuracy.partial.jsonl"
MODELS = (*BASELINES, "sequential")
#: Settings that are not hyperparameters: left out of the markdown table (they are in the JSON).
HIDDEN = {"seed", "template", "cache_dir", "block_size", "encoder", "batch_size", "backend", "max_seq_length"}
#: Test NDCG of well-tuned public implementations under PROTOCOLS.md (independent run, issue #4).
REFERENCE = {
    "online-retail-uci": {
        "EASE": 0.1038,
        "implicit ALS": 0.1016,
        "RecTools SASRec": 0.0646,
        "MiniLM content": 0.0389,
        "EASE/ALS + MiniLM blend": 0.1033,
    },
    "amazon2018-all-beauty": {
        "EASE": 0.4399,
        "implicit ALS": 0.4599,
        "RecTools SASRec": 0.4715,
        "MiniLM content": 0.0752,
        "EASE/ALS + MiniLM blend": 0.4727,
    },
    "movielens-latest-small": {
        "EASE": 0.0415,
        "implicit ALS": 0.0414,
        "RecTools SASRec": 0.0303,
        "MiniLM content": 0.0276,
        "EASE/ALS + MiniLM blend": 0.0569,
    },
}


def markdown(records: list[dict], meta: dict, ablations: dict | None = None) -> str:
    """The page; `ablations`: ablation.json's content, rendered as its own section (ablation.py)."""
    lines = [
        "# Accuracy benchmark",
        "",
        f"Measured {meta['date']} on {meta['machine']} ({meta['cores']} cores), Python {meta['python']}, "
        f"by `{meta['command']}` in {meta['seconds']:.0f} s.",
        "",
        "Protocols as in ../shared/PROTOCOLS.md: full ranking over all candidate items, the user's history",
        "removed. Hyperparameters chosen on the tuning split only (NDCG@K), then fitted on the fitted data",
        "and scored on the test targets. `fit s` is the final fit on 2 cores. Cold columns: P1, the users",
        "whose test item never occurs in the fitted data; P2, recall pooled over relevant items first seen",
        "after the cutoff. ID-only models cannot rank cold items, so their cold figures are 0. `content`",
        "(ContentKNN, all-MiniLM-L6-v2) reads its item vectors from the embedding cache filled while tuning,",
        "so its `fit s` excludes encoding; encoding speed is in encoding.md. `peak MB` is the max RSS of",
        "the process that loaded the data set, tuned the model and made the final fit.",
        "",
    ]
    for dataset in dict.fromkeys(r["dataset"] for r in records):
        rows = [r for r in records if r["dataset"] == dataset]
        metric_names = list(rows[0]["metrics"])
        lines += [f"## {dataset} ({rows[0]['protocol'].upper()}, {rows[0]['users']} evaluated users)", ""]
        lines.append("| model | " + " | ".join(metric_names) + " | fit s | peak MB | chosen configuration |")
        lines.append("|---|" + "---:|" * (len(metric_names) + 2) + "---|")
        best = max(rows, key=lambda r: r["metrics"][metric_names[0]] or 0)["model"]
        for row in rows:
            values = ["–" if row["metrics"][m] is None else f"{row['metrics'][m]:.4f}" for m in metric_names]
            if row["model"] == best:
                values[0] = f"**{values[0]}**"
            config = ", ".join(f"{k}={v}" for k, v in row["config"].items() if k not in HIDDEN) or "–"
            memory = f"{row['peak_memory_mb']}" if "peak_memory_mb" in row else "–"
            lines.append(
                f"| {row['model']} | " + " | ".join(values) + f" | {row['fit_seconds']:.1f} | {memory} | {config} |"
            )
        peers = [r for r in meta.get("peers", []) if r["dataset"] == dataset]
        if peers:
            lines += ["", "Published peers, same protocol and splits, in the same run (`peers.py`):", ""]
            lines.append("| peer | " + " | ".join(metric_names) + " | fit s | chosen configuration |")
            lines.append("|---|" + "---:|" * (len(metric_names) + 1) + "---|")
            for row in peers:
                values = ["–" if row["metrics"].get(m) is None else f"{row['metrics'][m]:.4f}" for m in metric_names]
                config = ", ".join(f"{k}={v}" for k, v in row["config"].items())
                lines.append(f"| {row['model']} | " + " | ".join(values) + f" | {row['fit_seconds']:.1f} | {config} |")
        if dataset in REFERENCE:
            ref = ", ".join(f"{name} {value:.4f}" for name, value in REFERENCE[dataset].items())
            lines += ["", f"Reference (independent run of public implementations, test {metric_names[0]}): {ref}."]
        lines += _versus(rows, peers, REFERENCE.get(dataset, {}), metric_names)
        lines += _fits(rows)
        lines.append("")
    if meta.get("peers_note"):
        lines += [f"Peers: {meta['peers_note']}", ""]
    if ablations:
        from ablation import section

        content = {r["dataset"]: r["metrics"] for r in records if r["model"] == "content"}
        when = ablations["meta"]
        lines += [
            section(ablations["records"], content),
            f"Ablations measured {when['date']} by `{when['command']}` in {when['seconds']:.0f} s."
            + (f" {when['note']}" if when.get("note") else ""),
            "",
        ]
    return "\n".join(lines)


def _fits(rows: list[dict]) -> list[str]:
    """How each final fit that chose on its own holdout went: its phases, why each stopped (a phase
    the time budget cut depends on the machine's speed) and what the holdout chose."""
    lines = []
    for row in rows:
        log = row.get("training") or {}
        phases = [phase for phase in log.get("phases", []) if phase.get("epochs")]
        if not (phases and log.get("metric")):
            continue
        facts = [phase_summary(phase) for phase in phases]
        if log.get("best_epoch"):
            facts.append(f"best holdout epoch {log['best_epoch']}")
        if log.get("final_phase"):
            facts.append(f"final phase {log['final_phase']}")
        if log.get("blend"):
            facts.append("blend " + ", ".join(f"{part} {weight:g}" for part, weight in log["blend"].items()))
        if log.get("cold_items"):
            facts.append("cold items " + ", ".join(f"{key} {value:g}" for key, value in log["cold_items"].items()))
        lines.append(f"{row['model']}'s final fit: " + "; ".join(facts) + ".")
    return ["", *lines] if lines else []


def _versus(rows: list[dict], peers: list[dict], reference: dict[str, float], metric_names: list[str]) -> list[str]:
    """The flagship against the best of everything else on the page: baselines, peers and references."""
    ours = next((r for r in rows if r["model"] == "sequential"), None)
    if ours is None or ours["metrics"][metric_names[0]] is None:
        return []
    metric = metric_names[0]
    others = {r["model"]: r["metrics"][metric] for r in rows + peers if r["model"] != "sequential"}
    others.update({f"reference {name}": value for name, value in reference.items()})
    others = {name: value for name, value in others.items() if value is not None}
    if not others:  # the flagship alone (accuracy.py --models sequential on a set without references)
        return []
    name = max(others, key=others.get)
    value = ours["metrics"][metric]
    change = 100 * (value / others[name] - 1)
    line = f"sequential against the best other ({name}, {others[name]:.4f}): {change:+.1f}% {metric}"
    cold = next((m for m in metric_names if m.startswith("cold_")), None)
    content = next((r for r in rows if r["model"] == "content"), None)
    if cold and content and content["metrics"].get(cold) and ours["metrics"].get(cold) is not None:
        line += f"; {cold} {ours['metrics'][cold]:.4f} against ContentKNN's {content['metrics'][cold]:.4f}"
    return ["", line + "."]


def _evaluate_one(name: str, protocol: str, model: str) -> list[dict]:
    """One model on one data set (tuned, then tested), in a child process; adds its peak memory."""
    dataset = load_dataset(name)
    records = evaluate(
        dataset,
        protocol,
        [model],
        include_tuning=True,
        include_analysis=True,
        on_event=lambda message: print("  " + message, flush=True),
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return [{**record, "peak_memory_mb": round(peak)} for record in records]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default=",".join(KNOWN_DATASETS))
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--no-peers", action="store_true", help="do not run the RecTools peers")
    parser.add_argument(
        "--peer-datasets", default=None, help="data sets for the peers (default: those of --datasets with references)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--render", action="store_true", help="only rewrite accuracy.md from accuracy.json")
    parser.add_argument(
        "--peers-from",
        type=Path,
        default=None,
        help="with --render: take the peers' rows from this peers.json (another run's) instead",
    )
    parser.add_argument("--peers-note", default=None, help="with --peers-from: where those rows come from")
    parser.add_argument(
        "--resume", action="store_true", help=f"keep the (data set, model) records a stopped run left in {PARTIAL}"
    )
    args = parser.parse_args(argv)
    if args.render:
        saved = json.loads((args.out / "accuracy.json").read_text())
        if args.peers_from is not None:
            saved["meta"]["peers"] = json.loads(args.peers_from.read_text())["records"]
            saved["meta"]["peers_note"] = args.peers_note or f"the peers' rows come from {args.peers_from}."
            (args.out / "accuracy.json").write_text(json.dumps(saved, indent=2))
        (args.out / "accuracy.md").write_text(markdown(saved["records"], saved["meta"], _ablations(args.out)))
        _report(saved["records"], saved["meta"], args.out)
        return 0
    datasets = available_datasets(args.datasets)
    models = [m for m in args.models.split(",") if m]
    if not datasets:
        return 0
    started = time.perf_counter()
    done: dict[tuple[str, str], list[dict]] = {}
    if args.resume and PARTIAL.is_file():
        for line in PARTIAL.read_text().splitlines():
            entry = json.loads(line)
            done[(entry["dataset"], entry["model"])] = entry["records"]
    else:
        PARTIAL.parent.mkdir(parents=True, exist_ok=True)
        PARTIAL.write_text("")
    records: list[dict] = []
    context = multiprocessing.get_context("spawn")
    for name in datasets:
        protocol = KNOWN_DATASETS[name]
        print(f"== {name} ({protocol})", flush=True)
        for model in models:
            if (name, model) in done:
                records += done[(name, model)]
                continue
            with context.Pool(1) as pool:  # a fresh process per model: its own peak memory
                measured = pool.apply(_evaluate_one, (name, protocol, model))
            records += measured
            with PARTIAL.open("a") as partial:
                partial.write(json.dumps({"dataset": name, "model": model, "records": measured}) + "\n")
    # The peers run after our models, not beside them: two jobs on 2 cores would slow both fits.
    peers, peers_note, peers_file = [], None, args.out / "peers.json"
    if args.no_peers:
        peers_note = "not run (--no-peers)."
    elif not PEERS_PYTHON.is_file():
        peers_note = f"not run: no virtual environment at {PEERS_PYTHON.parent.parent} (see peers.py for its set-up)."
    else:
        peers_file.unlink(missing_ok=True)
        chosen = datasets if args.peer_datasets is None else args.peer_datasets.split(",")
        peer_sets = ",".join(d for d in chosen if d in REFERENCE)
        command = [str(PEERS_PYTHON), str(Path(__file__).with_name("peers.py")), "--out", str(peers_file)]
        code = subprocess.run([*command, "--datasets", peer_sets], check=False).returncode
        if peers_file.is_file():
            peers = json.loads(peers_file.read_text())["records"]
        peers_note = None if code == 0 else f"peers.py exited with {code}; the rows above are those it finished."
    meta = run_meta(
        "accuracy.py",
        argv,
        numpy=np.__version__,
        seconds=time.perf_counter() - started,
        peers=peers,
        peers_note=peers_note,
    )
    page = markdown(records, meta, _ablations(args.out))
    write_results(args.out, "accuracy", {"meta": meta, "records": records}, page)
    _report(records, meta, args.out)
    return 0


def _ablations(out: Path) -> dict | None:
    """ablation.json's content where ablation.py has written it."""
    path = out / "ablation.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _report(records: list[dict], meta: dict, out: Path) -> None:
    """accuracy.html: the same records as plots (for records measured with their analysis)."""
    analysed = [r for r in records if r.get("analysis")]
    if not analysed:
        print("accuracy.html not written: these records predate the analysis (run the benchmark again)")
        return
    from shelfwise.evaluation.report import write_report

    text = f"Measured {meta['date']} on {meta['machine']} ({meta['cores']} cores) by `{meta['command']}`."
    write_report(analysed, out / "accuracy.html", title="shelfwise accuracy benchmark", meta=text)


if __name__ == "__main__":
    sys.exit(main())
