"""Batch encoding on Ray Data: the texts the cache lacks are split over encoder actors, each loading
the encoder once and using one CPU; vectors come back in order and the driver stores them."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from shelfwise.distributed.cluster import connect


class _Encoder:
    """A Ray Data actor: one encoder per worker, one torch thread (Ray gives it one CPU)."""

    def __init__(self, spec: str, options: dict) -> None:
        import torch

        from shelfwise.text import create_encoder

        torch.set_num_threads(1)
        self.encoder = create_encoder(spec, **options)

    def __call__(self, batch: dict) -> dict:
        vectors = self.encoder.encode([str(t) for t in batch["text"]])
        return {"row": batch["row"], "vector": vectors.astype(np.float32)}


def ray_stream(
    spec: str,
    *,
    workers: int = 2,
    address: str | None = None,
    batch_size: int = 256,
    options: dict | None = None,
) -> Callable[[list[str]], Iterator[np.ndarray]]:
    """A `stream` for `text.pipeline.encode_texts`: encodes on `workers` Ray actors."""

    def stream(texts: list[str]) -> Iterator[np.ndarray]:
        ray = connect(address)
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True
        dataset = ray.data.from_items([{"row": i, "text": t} for i, t in enumerate(texts)])
        encoded = dataset.map_batches(
            _Encoder,
            fn_constructor_kwargs={"spec": spec, "options": options or {}},
            batch_size=batch_size,
            concurrency=workers,
            num_cpus=1,
            batch_format="numpy",
        )
        expected = 0
        for batch in encoded.iter_batches(batch_size=batch_size, batch_format="numpy"):
            rows = np.asarray(batch["row"])
            if len(rows) and (rows[0] != expected or np.any(np.diff(rows) != 1)):
                raise RuntimeError("Ray Data returned encoded rows out of order")
            expected += len(rows)
            yield np.stack(batch["vector"]).astype(np.float32)

    return stream
