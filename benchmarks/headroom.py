"""Headroom: how much could other model families add to the sequential model's blend? (P1 data sets)

On the tuning split only (no test figure is read), for the shoppers scored there:

1. the shipped sequential model (its blend, as `evaluate` fits it) and, trained on their own, the
   transformer at two widths;
2. other families as parts: EASE, item cosine (ItemKNN), session kNN (shoppers with the same recent
   items), next-item transitions forward, backward and both ways, transitions of the text neighbours
   of the latest items, the text profile, popularity;
3. a blend of all of them with the shipped blend as one part: weights by coordinate ascent on one
   random half of the shoppers, scored on the other half, both ways round. What it gains on the
   half it did not see over the shipped blend alone is the headroom these families leave.

Each part is also scored by segment: shoppers whose target the fitted transitions rank first after
their latest item ("chain"), shoppers whose target no fitted history holds ("cold"), the rest.

    python benchmarks/headroom.py                                  # amazon2018-all-beauty
    python benchmarks/headroom.py --datasets movielens-100k,amazon2018-all-beauty
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from common import available_datasets, run_meta, write_results
from shelfwise.data.adapters import KNOWN_DATASETS, load_dataset
from shelfwise.evaluation.protocols import make_splits
from shelfwise.models.content import recency_weights, text_profile_scores
from shelfwise.models.ease import ease_weights
from shelfwise.models.itemknn import ItemKNN
from shelfwise.models.sequential import SequentialRecommender
from shelfwise.models.sequential.blend import transition_matrix, zscore
from shelfwise.models.sequential.histories import sequence_matrix
from shelfwise.ranking import ndcg_rows, topk

RESULTS = Path(__file__).resolve().parent / "results"
ASCENT_VALUES = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
ASCENT_ROUNDS = 3
SKNN_NEIGHBOURS = 100


def family_parts(model: SequentialRecommender, users: np.ndarray, item_knn: ItemKNN) -> dict[str, np.ndarray]:
    """Z-scored scores of each family for the evaluated users, from the model's fitted histories."""
    n = model.n_items_
    fitted = model.sequences_
    inputs = [fitted[u] for u in users]
    everyone, history = sequence_matrix(fitted, n), sequence_matrix(inputs, n)  # row u of everyone = shopper u
    latest = recency_weights(inputs, n, recency=0.5, max_history=3)  # as the blend's transition part reads them
    forward = model.parts_.transitions
    backward = transition_matrix([s[::-1] for s in fitted], n)
    counts = np.asarray(everyone.sum(axis=0)).ravel()
    unit = model.text_vectors_ / np.maximum(np.linalg.norm(model.text_vectors_, axis=1, keepdims=True), 1e-12)
    similar = unit @ unit.T
    np.fill_diagonal(similar, -np.inf)
    nearest = np.argpartition(-similar, 20, axis=1)[:, :20]
    text_knn = np.zeros_like(similar)
    np.put_along_axis(text_knn, nearest, np.maximum(np.take_along_axis(similar, nearest, axis=1), 0.0), axis=1)
    # session kNN: other shoppers weighted by how many of this shopper's recent items they took
    overlap = (recency_weights(inputs, n, recency=0.7, max_history=50) @ everyone.T).toarray()
    overlap[np.arange(len(users)), users] = 0.0  # not the shopper themself
    keep = np.argpartition(-overlap, SKNN_NEIGHBOURS - 1, axis=1)[:, :SKNN_NEIGHBOURS]
    kept = np.zeros_like(overlap)
    np.put_along_axis(kept, keep, np.take_along_axis(overlap, keep, axis=1), axis=1)
    kept /= np.sqrt(np.maximum(np.asarray(everyone.sum(axis=1)).ravel(), 1.0))[None]
    parts = {
        "EASE (λ 250)": history @ ease_weights(everyone, 250.0),
        "item cosine (ItemKNN, shrink 10)": (history @ item_knn.similarity_).toarray(),
        "session kNN (100 shoppers)": kept @ everyone,
        "transitions forward": model.parts_.next_scores(inputs),
        "transitions backward": (latest @ backward).toarray(),
        "transitions both ways": (latest @ (forward + backward)).toarray(),
        "transitions of text neighbours": (latest @ sp.csr_matrix(text_knn) @ forward).toarray(),
        "text profile": text_profile_scores(inputs, model.text_vectors_),
        "popularity": np.repeat(np.log1p(counts)[None], len(users), axis=0),
    }
    return {name: zscore(np.asarray(scores)) for name, scores in parts.items()}


def measure(name: str, seed: int) -> dict:
    dataset = load_dataset(name)
    split = make_splits(dataset, KNOWN_DATASETS[name])["tune"]
    if split.cold_users is None:
        raise SystemExit(f"{name}: headroom.py reads P1 (leave-last-out) data sets only")
    users, targets = split.users, split.targets
    started = time.perf_counter()
    shipped = SequentialRecommender(seed=seed).fit(split.train)
    parts = {"shipped sequential blend": shipped.score_histories([shipped.sequences_[u] for u in users])}
    for dim in (64, 128):
        alone = SequentialRecommender(dim=dim, blend=False, seed=seed).fit(split.train)
        parts[f"transformer alone, dim {dim}"] = zscore(alone.score_histories([alone.sequences_[u] for u in users]))
    every_neighbour = ItemKNN(neighbours=shipped.n_items_, shrink=10.0).fit(split.train)
    parts.update(family_parts(shipped, users, every_neighbour))
    fit_seconds = time.perf_counter() - started
    history = split.history()[users]
    rows = np.repeat(np.arange(len(users)), np.diff(history.indptr))

    def ndcg(scores: np.ndarray) -> np.ndarray:
        scores = np.array(scores, dtype=np.float32)
        scores[rows, history.indices] = -np.inf
        return ndcg_rows(topk(scores, split.k)[0], targets)

    target = np.array([t[0] for t in targets])
    latest = np.array([shipped.sequences_[u][-1] if len(shipped.sequences_[u]) else -1 for u in users])
    forward = shipped.parts_.transitions
    first = np.asarray(forward.argmax(axis=1)).ravel()
    has_next = np.diff(forward.indptr) > 0
    cold = split.cold_users
    chain = ~cold & (latest >= 0) & has_next[latest] & (first[latest] == target)
    segments = {"all": np.ones(len(users), bool), "chain": chain, "cold": cold, "other": ~cold & ~chain}
    values = {part: ndcg(scores) for part, scores in parts.items()}
    table = {
        part: {seg: float(v[mask].mean()) if mask.any() else None for seg, mask in segments.items()}
        for part, v in values.items()
    }
    halves = np.random.default_rng(seed).random(len(users)) < 0.5
    rounds = []
    for fit_half in (halves, ~halves):
        weights = {part: 0.0 for part in parts}
        weights["shipped sequential blend"] = 1.0
        total = parts["shipped sequential blend"].copy()
        best = ndcg(total)[fit_half].mean()
        for _ in range(ASCENT_ROUNDS):
            moved = False
            for part in parts:
                for value in ASCENT_VALUES:
                    others = any(w for p, w in weights.items() if p != part)
                    if value == weights[part] or not (value or others):  # never every weight at 0
                        continue
                    trial = total + np.float32(value - weights[part]) * parts[part]
                    score = ndcg(trial)[fit_half].mean()
                    if score > best + 1e-9:
                        best, total, weights[part], moved = score, trial, value, True
            if not moved:
                break
        unseen = ~fit_half
        joined, alone = ndcg(total), values["shipped sequential blend"]
        rounds.append(
            {
                "weights": {p: w for p, w in weights.items() if w},
                "shoppers": int(unseen.sum()),
                "shipped": float(alone[unseen].mean()),
                "joined": float(joined[unseen].mean()),
                "by segment": {
                    seg: [float(alone[unseen & m].mean()), float(joined[unseen & m].mean())]
                    for seg, m in segments.items()
                    if (unseen & m).any()
                },
            }
        )
    return {
        "dataset": name,
        "k": split.k,
        "shoppers": len(users),
        "segment sizes": {seg: int(mask.sum()) for seg, mask in segments.items()},
        "parts": table,
        "blend chosen in the fit": shipped.training_log_["blend"],
        "joined on the unseen half": rounds,
        "seconds": round(fit_seconds, 1),
    }


def markdown(results: list[dict], meta: dict) -> str:
    lines = [
        "# Headroom: what other model families add to the sequential blend (tuning splits only)",
        "",
        f"Measured {meta['date']} on {meta['machine']} ({meta['cores']} cores) by `{meta['command']}`.",
        "",
        "Every figure is on a P1 tuning split (fitted on the training rows, scored on the validation targets); no",
        "test figure is read. Parts are z-scored per shopper. Segments: `chain`, the target is what the fitted",
        "transitions rank first after the shopper's latest item; `cold`, no fitted history holds the target;",
        "`other`, the rest. `joined`: the shipped blend plus every part, with weights found by coordinate ascent",
        "on one random half of the shoppers and scored on the other half (both ways round).",
    ]
    for result in results:
        k, sizes = result["k"], result["segment sizes"]
        lines += [
            "",
            f"## {result['dataset']} (ndcg@{k}, {result['shoppers']:,} shoppers)",
            "",
            f"| part | all | chain ({sizes['chain']}) | cold ({sizes['cold']}) | other ({sizes['other']}) |",
            "|---|---:|---:|---:|---:|",
        ]
        cell = lambda v: "–" if v is None else f"{v:.4f}"  # noqa: E731
        for part, row in result["parts"].items():
            lines.append(f"| {part} | " + " | ".join(cell(row[s]) for s in ("all", "chain", "cold", "other")) + " |")
        lines += ["", f"The fit's own blend: {result['blend chosen in the fit']}.", ""]
        lines += ["| unseen half | shoppers | shipped blend | joined | change | weights found on the other half |"]
        lines += ["|---|---:|---:|---:|---:|---|"]
        for number, half in enumerate(result["joined on the unseen half"], 1):
            change = half["joined"] / half["shipped"] - 1.0 if half["shipped"] else float("nan")
            weights = ", ".join(f"{p} {w:g}" for p, w in half["weights"].items())
            lines.append(
                f"| {number} | {half['shoppers']} | {half['shipped']:.4f} | {half['joined']:.4f} | "
                f"{change:+.1%} | {weights} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="amazon2018-all-beauty")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    unknown = [d for d in args.datasets.split(",") if d and KNOWN_DATASETS.get(d) != "p1"]
    if unknown:
        parser.error(f"not P1 data sets: {unknown}; P1 sets are {[d for d, p in KNOWN_DATASETS.items() if p == 'p1']}")
    started = time.perf_counter()
    results = [measure(name, args.seed) for name in available_datasets(args.datasets)]
    if not results:
        return
    meta = run_meta("headroom.py", argv, seconds=round(time.perf_counter() - started, 1))
    write_results(RESULTS, "headroom", {"meta": meta, "results": results}, markdown(results, meta))


if __name__ == "__main__":
    main()
