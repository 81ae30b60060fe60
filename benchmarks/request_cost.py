"""What one answer costs at the service's limits, on one core: the evidence for `MAX_K`.

Builds a synthetic shop of `--items` items (100,000 by default), trains ALS on it (its answers come
through the vector index, the fastest path, so the options' own cost stands out), and opens an
`Engine` over it on one thread (BLAS, faiss and torch pools limited to one, as `shelfwise serve`
does). Then times each read at several `k`, with and without the costliest options (diversity 1,
cross-category: `min_categories` = k/10 and `outside_share` 0.5), `--repeats` times each for random
shoppers, and writes the percentiles to `results/request_cost.{md,json}`.

Item text vectors come from a stand-in encoder (a hash of the text to a unit vector): encoding
100,000 items with the real model takes a quarter of an hour here and does not change what the
options cost (they read vectors, never the encoder). The report says so.

    python benchmarks/request_cost.py [--items 100000] [--users 20000] [--repeats 40]
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import run_meta, write_results

ROOT = Path(__file__).resolve().parents[1]


class HashEncoder:
    """Stand-in encoder: a deterministic unit vector per text (384 dimensions, as MiniLM)."""

    dim = 384
    identity = "stand-in:sha256"

    def encode(self, texts, *, progress: bool = False) -> np.ndarray:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
            vector = np.random.default_rng(seed).standard_normal(self.dim)
            out[row] = vector / np.linalg.norm(vector)
        return out


def build_engine(work: Path, items: int, users: int):
    import shelfwise.engine.catalog_text as text_module
    import shelfwise.engine.engine as engine_module
    from shelfwise.data.dataset import Dataset
    from shelfwise.data.synthetic import generate_shop
    from shelfwise.models import create_model

    model_dir = work / "model"
    started = time.perf_counter()
    shop = generate_shop(n_items=items, n_users=users, days=56, seed=11)
    dataset = Dataset.from_frames(shop.events, shop.items, name=f"synthetic-{items}")
    create_model("als", factors=64, iterations=10).fit(dataset).save(model_dir)
    dataset.save(model_dir / "dataset")
    print(f"shop {dataset} and ALS in {time.perf_counter() - started:.0f} s", flush=True)
    text_module.create_encoder = lambda _spec: HashEncoder()  # the stand-in (see the docstring)
    text_module.encode_texts = _encode_texts
    started = time.perf_counter()
    engine = engine_module.Engine(model_dir, f"sqlite:///{work / 'store.db'}", index="exact")
    print(f"engine ready in {time.perf_counter() - started:.0f} s", flush=True)
    return engine, [str(u) for u in dataset.user_ids]


def _encode_texts(texts, encoder, **_options):
    from types import SimpleNamespace

    return SimpleNamespace(vectors=encoder.encode(list(texts)))


def timed(call, repeats: int) -> dict:
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - started)
    seconds.sort()
    return {
        "p50_ms": round(1000 * statistics.median(seconds), 2),
        "p99_ms": round(1000 * seconds[min(len(seconds) - 1, int(0.99 * len(seconds)))], 2),
        "max_ms": round(1000 * seconds[-1], 2),
    }


def measure(engine, users: list[str], repeats: int, ks: list[int]) -> list[dict]:
    from shelfwise.retrieval import Filters

    rng = np.random.default_rng(5)
    item = engine.catalog.ids[0]

    def shopper() -> str:
        return users[rng.integers(len(users))]

    def crossing(k: int) -> dict:
        return {"min_categories": max(k // 10, 2), "outside_share": 0.5}

    rows = []
    for k in ks:
        calls = {
            "recommendations": partial(lambda k: engine.recommend(shopper(), k), k),
            "recommendations, diversity 1": partial(lambda k: engine.recommend(shopper(), k, diversity=1.0), k),
            "recommendations, cross-category": partial(lambda k: engine.recommend(shopper(), k, **crossing(k)), k),
            "recommendations, all options": partial(
                lambda k: engine.recommend(
                    shopper(), k, diversity=1.0, filters=Filters(in_stock=True, max_price=200.0), **crossing(k)
                ),
                k,
            ),
            "similar, cross-category": partial(lambda k: engine.similar(item, k, cross_category=True), k),
            "new arrivals": partial(lambda k: engine.new_arrivals(shopper(), k), k),
            "search, personalised": partial(lambda k: engine.search("blue ceramic mug", k, user_id=shopper()), k),
        }
        for name, call in calls.items():
            rows.append({"request": name, "k": k, **timed(call, repeats)})
            print(f"  k={k:>4} {name:<36} p50 {rows[-1]['p50_ms']:>8} ms  p99 {rows[-1]['p99_ms']:>8} ms", flush=True)
    return rows


def markdown(rows: list[dict], meta: dict) -> str:
    lines = [
        "# What one answer costs at the limits",
        "",
        f"Measured {meta['date']} on {meta['machine']} ({meta['cores']} cores, one thread used), Python "
        f"{meta['python']}, by `{meta['command']}`.",
        "",
        f"A synthetic shop of {meta['items']:,} items and {meta['users']:,} shoppers, ALS (64 factors) through the "
        "exact vector index, SQLite store; each cell is "
        f"{meta['repeats']} answers for random shoppers, timed inside the process (no HTTP). Item text vectors are "
        "stand-ins (a hash of the text to a unit vector): the options read vectors, never the encoder. "
        "'All options' is diversity 1, `min_categories` = k/10 (at least 2), `outside_share` 0.5, in stock and "
        "under a price.",
        "",
        "| request | k | p50 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [f"| {r['request']} | {r['k']} | {r['p50_ms']} | {r['p99_ms']} | {r['max_ms']} |" for r in rows]
    lines += [
        "",
        f"The service accepts k up to {meta['max_k']} on every list route (`MAX_K` in `service/schemas.py`); "
        "the rows above that are what a larger k would cost.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--k", default="10,50,100")  # ranking.MAX_K: no answer holds more
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    from threadpoolctl import threadpool_limits

    from shelfwise.service.schemas import MAX_K

    with tempfile.TemporaryDirectory() as folder:
        engine, users = build_engine(Path(folder), args.items, args.users)
        import faiss
        import torch

        faiss.omp_set_num_threads(1)
        torch.set_num_threads(1)
        with threadpool_limits(limits=1):
            rows = measure(engine, users, args.repeats, [int(k) for k in args.k.split(",")])
        engine.close()
    meta = run_meta("request_cost.py", argv, items=args.items, users=args.users, repeats=args.repeats, max_k=MAX_K)
    write_results(args.out, "request_cost", {"meta": meta, "rows": rows}, markdown(rows, meta))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
