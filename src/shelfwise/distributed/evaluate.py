"""Scoring evaluated users on Ray: the fitted model goes to the object store once, and each task
ranks one slice of the users."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from shelfwise.distributed.cluster import connect


def _rank(model, users: np.ndarray, depth: int, candidates: np.ndarray | None, batch_size: int):
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):  # one CPU per task: BLAS must not fight the other tasks
        return model.recommend(users, depth, candidates=candidates, batch_size=batch_size)


def ray_recommend(*, workers: int = 2, address: str | None = None) -> Callable:
    """A `recommend` for `evaluation.evaluate`: ``recommend(model, users, depth, candidates=,
    batch_size=)`` with the users split over `workers` Ray tasks; same answer as ``model.recommend``."""

    def recommend(model, users, depth, *, candidates=None, batch_size=512):
        ray = connect(address)
        users = np.asarray(users)
        if len(users) == 0:
            return model.recommend(users, depth, candidates=candidates, batch_size=batch_size)
        task = ray.remote(num_cpus=1)(_rank)
        model_ref = ray.put(model)
        slices = [part for part in np.array_split(users, min(workers, len(users))) if len(part)]
        results = ray.get([task.remote(model_ref, part, depth, candidates, batch_size) for part in slices])
        return np.vstack([ids for ids, _ in results]), np.vstack([scores for _, scores in results])

    return recommend
