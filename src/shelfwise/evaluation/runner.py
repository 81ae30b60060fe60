"""Fitting, tuning and scoring models under a protocol, side by side."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shelfwise.data.dataset import Dataset
from shelfwise.evaluation.metrics import ndcg_at_k, pooled_recall_at_k, recall_at_k
from shelfwise.evaluation.protocols import Split, check_no_leakage, make_splits
from shelfwise.models.base import Recommender, create_model, get_model_class

logger = logging.getLogger(__name__)


CURVE_KS = (1, 5, 10, 20, 50)


#: ``recommend(model, users, k, *, candidates=, batch_size=) -> (ids, scores)``: who ranks the users.
RecommendFn = Callable[..., tuple[np.ndarray, np.ndarray]]


def _local_recommend(model: Recommender, users, k, *, candidates=None, batch_size=512):
    return model.recommend(users, k, candidates=candidates, batch_size=batch_size)


def score_split(
    model: Recommender,
    split: Split,
    *,
    batch_size: int = 512,
    analysis: dict[str, Any] | None = None,
    recommend: RecommendFn | None = None,
) -> dict[str, float]:
    """Rank every candidate for each evaluated user (history removed) and compute the protocol's metrics.

    With an `analysis` dict, also fills it with NDCG at several K, warm against cold, popularity bias
    and catalog coverage (what the HTML report plots). `recommend` ranks elsewhere (a Ray cluster,
    `shelfwise.distributed.ray_recommend`); it must answer as ``model.recommend`` does."""
    if split.sampled is not None:  # P3: the target's rank among its 20 candidates
        return sampled_metrics(model, split, batch_size=batch_size)
    k = split.k
    depth = max(k, *CURVE_KS) if analysis is not None else k
    recommend = recommend or _local_recommend
    deep, _ = recommend(model, split.users, depth, candidates=split.candidates, batch_size=batch_size)
    ids = deep[:, :k]
    ndcg = ndcg_at_k(ids, split.targets, k)
    recall = recall_at_k(ids, split.targets, k)
    metrics = {
        f"ndcg@{k}": float(ndcg.mean()) if len(ndcg) else float("nan"),
        f"recall@{k}": float(recall.mean()) if len(recall) else float("nan"),
    }
    if split.cold_users is not None:  # P1: the users whose target was never seen in training
        cold = split.cold_users
        metrics[f"cold_ndcg@{k}"] = float(ndcg[cold].mean()) if cold.any() else float("nan")
        metrics[f"cold_recall@{k}"] = float(recall[cold].mean()) if cold.any() else float("nan")
    if split.cold_items is not None:  # P2: pooled recall over relevant items first seen after the cutoff
        cold_targets = [t[split.cold_items[t]] for t in split.targets]
        metrics[f"cold_recall@{k}"] = pooled_recall_at_k(ids, cold_targets, k)
    if analysis is not None:
        analysis.update(_analysis(deep, ids, split, ndcg, recall))
    return metrics


#: P3's cut-offs (PROTOCOLS.md): Hit@1/5/10 and NDCG@5/10.
P3_HITS = (1, 5, 10)
P3_NDCGS = (5, 10)


def sampled_metrics(model: Recommender, split: Split, *, batch_size: int = 512) -> dict[str, float]:
    """P3: each evaluated user's 20 candidates ranked by the model's scores (history not removed; ties
    count against the target); Hit and NDCG at P3's cut-offs, overall, cold and warm."""
    assert split.sampled is not None
    ranks = np.empty(len(split.users), dtype=np.int64)
    for start in range(0, len(split.users), batch_size):
        users = split.users[start : start + batch_size]
        candidates = split.sampled[start : start + batch_size]
        scores = np.take_along_axis(model.score(users), candidates, axis=1)
        targets = np.array([t[0] for t in split.targets[start : start + batch_size]])
        own = scores[candidates == targets[:, None]]
        ranks[start : start + len(users)] = (scores >= own[:, None]).sum(axis=1)  # ties rank above
    cold = split.cold_users if split.cold_users is not None else np.zeros(len(ranks), dtype=bool)
    metrics: dict[str, float] = {}
    for name, rows in (("", slice(None)), ("cold_", cold), ("warm_", ~cold)):
        chosen = ranks[rows]
        for k in P3_HITS:
            metrics[f"{name}hit@{k}"] = float((chosen <= k).mean()) if len(chosen) else float("nan")
        for k in P3_NDCGS:
            gains = np.where(chosen <= k, 1.0 / np.log2(chosen + 1.0), 0.0)
            metrics[f"{name}ndcg@{k}"] = float(gains.mean()) if len(chosen) else float("nan")
    return metrics


def _analysis(deep: np.ndarray, ids: np.ndarray, split: Split, ndcg: np.ndarray, recall: np.ndarray) -> dict:
    """NDCG@K for several K; warm vs cold; popularity bias and coverage of the top-K lists."""
    k = split.k
    curve = {str(depth): float(ndcg_at_k(deep[:, :depth], split.targets, depth).mean()) for depth in CURVE_KS}
    slices: dict[str, float | None] = {}
    if split.cold_users is not None:
        warm = ~split.cold_users
        slices = {
            "warm users": float(ndcg[warm].mean()) if warm.any() else None,
            "cold users": float(ndcg[split.cold_users].mean()) if split.cold_users.any() else None,
        }
        slice_metric = f"ndcg@{k}"
    elif split.cold_items is not None:
        slices = {
            "warm items": pooled_recall_at_k(ids, [t[~split.cold_items[t]] for t in split.targets], k),
            "cold items": pooled_recall_at_k(ids, [t[split.cold_items[t]] for t in split.targets], k),
        }
        slice_metric = f"pooled recall@{k}"
    else:
        slice_metric = f"ndcg@{k}"
    users_per_item = np.asarray(split.train.user_items(binary=True).sum(axis=0)).ravel()
    candidates = np.flatnonzero(split.candidates)
    order = np.argsort(np.argsort(users_per_item[candidates], kind="stable"), kind="stable")
    percentile = np.zeros(len(users_per_item))
    percentile[candidates] = (order + 1) / max(len(candidates), 1)  # 1.0 = the most popular candidate
    shown = ids[ids >= 0]
    return {
        "ndcg_at": curve,
        "slices": slices,
        "slice_metric": slice_metric,
        "popularity_percentile": float(percentile[shown].mean()) if len(shown) else None,
        "coverage": float(len(np.unique(shown)) / max(len(candidates), 1)),
        "recall": float(recall.mean()) if len(recall) else None,
    }


def fit_and_score(
    model: Recommender,
    split: Split,
    *,
    progress: bool = False,
    analysis: dict[str, Any] | None = None,
    recommend: RecommendFn | None = None,
) -> tuple[dict[str, float], float]:
    """Check the split for leakage, fit on its training rows only, and score. Returns (metrics, fit seconds)."""
    check_no_leakage(split)
    started = time.perf_counter()
    model.fit(split.train, progress=progress)
    fit_seconds = time.perf_counter() - started
    return score_split(model, split, analysis=analysis, recommend=recommend), fit_seconds


@dataclass
class TuningResult:
    """Every configuration tried on the tuning split, and the best one."""

    best_params: dict[str, Any]
    trials: list[tuple[dict[str, Any], float]] = field(default_factory=list)


def tune(
    model_name: str,
    split: Split,
    *,
    grid: Sequence[dict[str, Any]] | None = None,
    base_params: dict[str, Any] | None = None,
    on_trial: Callable[[dict[str, Any], float], None] | None = None,
    recommend: RecommendFn | None = None,
    prepare: Callable[[Recommender], None] | None = None,
) -> TuningResult:
    """Try each configuration of `grid` (default: the model's `tuning_grid`) on the tuning split and
    keep the one with the best NDCG@K. Ties keep the earlier configuration; a configuration that cannot
    differ from the default on this data (`Recommender.trial_differs`) is skipped. `base_params` are
    fixed: they hold in every trial, over the grid's values (a trial they make a repeat is skipped).
    Each fitted configuration
    is also scored with every value of the model's `rescoring_grid` that applies to it (and of its
    `sampled_rescoring_grid` where the split ranks sampled candidates), without a refit."""
    model_cls = get_model_class(model_name)
    grid = list(grid if grid is not None else model_cls.tuning_grid) or [{}]
    metric = f"ndcg@{split.k}"
    trials: list[tuple[dict[str, Any], float]] = []
    fitted: list[dict[str, Any]] = []
    for params in grid:
        full = {**params, **(base_params or {})}
        if full in fitted:
            continue
        fitted.append(full)
        if params and not model_cls.trial_differs(full, split.train):
            logger.info("tune %s %s: skipped, it cannot differ from the default on this data", model_name, params)
            continue
        model = model_cls(**full)
        if prepare:
            prepare(model)
        metrics, _ = fit_and_score(model, split, recommend=recommend)
        variants = [(full, metrics)]
        rescoring = dict(model_cls.rescoring_grid)
        if split.sampled is not None:
            rescoring.update(model_cls.sampled_rescoring_grid)
        for name, values in rescoring.items():
            if name in (base_params or {}):
                continue  # fixed by the caller
            as_fitted = model.get_params()[name]
            for value in values:
                if value != as_fitted and model.rescored(**{name: value}):
                    variants.append(({**full, name: value}, score_split(model, split, recommend=recommend)))
            model.rescored(**{name: as_fitted})  # the next parameter's values are tried from the fit as it was
        for trial, measured in variants:
            trials.append((trial, measured[metric]))
            logger.info("tune %s %s: %s=%.4f", model_name, trial, metric, measured[metric])
            if on_trial:
                on_trial(trial, measured[metric])
    best = max(range(len(trials)), key=lambda i: (trials[i][1], -i))
    return TuningResult(best_params=trials[best][0], trials=trials)


def evaluate(
    dataset: Dataset,
    protocol: str,
    model_names: Sequence[str],
    *,
    tuned: bool = True,
    params: dict[str, dict[str, Any]] | None = None,
    progress: bool = False,
    split_options: dict[str, Any] | None = None,
    on_event: Callable[[str], None] | None = None,
    include_tuning: bool = False,
    include_analysis: bool = False,
    recommend: RecommendFn | None = None,
    prepare: Callable[[Recommender], None] | None = None,
    base_params: dict[str, dict[str, Any]] | None = None,
    on_record: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Run each model under `protocol` and return one record per model:
    ``{"dataset", "protocol", "model", "metrics", "users", "fit_seconds", "config"}``, and
    ``"training"`` where the model keeps a training log (its phases, epochs, why each stopped, what
    its holdout chose), so that a figure can be traced to the fit that gave it.

    With `tuned`, each model's grid is searched on the tuning split first; `params` fixes
    hyperparameters per model instead (no search for a model named there); `base_params` fixes some
    of a model's hyperparameters, in the search and the final fit alike. With `include_tuning`
    each record also has a ``"tuning"`` list of ``{"params", "ndcg@K"}`` on the tuning split; with
    `include_analysis` an ``"analysis"`` dict (NDCG at several K, warm/cold, popularity, coverage).
    `recommend` ranks the evaluated users elsewhere (see `score_split`); `prepare` is called on each
    model before it is fitted (to attach a distributed trainer, say); `on_record` is called with each
    model's record the moment it is complete (to write it before the next model starts).
    """
    for name in model_names:
        get_model_class(name)  # fail on an unknown name before any work
    splits = make_splits(dataset, protocol, **(split_options or {}))
    records = []
    for name in model_names:
        fixed = (params or {}).get(name)
        base = (base_params or {}).get(name, {})
        trials: list[tuple[dict[str, Any], float]] = []
        if fixed is not None or not tuned:
            chosen = {**(fixed or {}), **base}
        else:

            def report(trial: dict[str, Any], value: float, name: str = name) -> None:
                if on_event:
                    on_event(f"{name}: tuning {trial} → ndcg@{splits['tune'].k} {value:.4f}")

            result = tune(name, splits["tune"], base_params=base, on_trial=report, recommend=recommend, prepare=prepare)
            chosen, trials = result.best_params, result.trials
        model = create_model(name, **chosen)
        if prepare:
            prepare(model)
        analysis: dict[str, Any] | None = {} if include_analysis else None
        metrics, fit_seconds = fit_and_score(
            model, splits["test"], progress=progress, analysis=analysis, recommend=recommend
        )
        record = {
            "dataset": dataset.name,
            "protocol": protocol,
            "model": name,
            "metrics": {key: round(value, 6) if np.isfinite(value) else None for key, value in metrics.items()},
            "users": len(splits["test"].users),
            "fit_seconds": round(fit_seconds, 3),
            "config": model.get_params(),
        }
        if getattr(model, "training_log_", None):
            record["training"] = model.training_log_
        if include_analysis:
            record["analysis"] = analysis
        if include_tuning:
            metric = f"ndcg@{splits['tune'].k}"
            record["tuning"] = [{"params": p, metric: round(v, 6)} for p, v in trials]
        if on_event:
            on_event(f"{name}: {record['metrics']} (fit {fit_seconds:.1f}s)")
        records.append(record)
        if on_record:
            on_record(record)
    return records
