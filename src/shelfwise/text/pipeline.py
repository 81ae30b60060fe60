"""Encoding a catalog through the cache: only new or changed texts reach the encoder."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from shelfwise.errors import ShelfwiseError
from shelfwise.settings import load_settings
from shelfwise.text.cache import EmbeddingCache, text_key
from shelfwise.text.encoder import TextEncoder
from shelfwise.text.item_text import ItemTextTemplate

logger = logging.getLogger(__name__)
_WRITE_BATCH = 2048


@dataclass
class EncodeResult:
    vectors: np.ndarray  # (items, dim), L2-normalised, row i = item i of the table
    items: int
    encoded: int  # items whose vector was computed now
    from_cache: int  # items whose vector came from the cache
    encode_seconds: float

    def summary(self) -> dict[str, float | int]:
        return {
            "items": self.items,
            "encoded": self.encoded,
            "from_cache": self.from_cache,
            "encode_seconds": round(self.encode_seconds, 4),
        }


def default_cache_dir() -> Path:
    return load_settings().home / "cache" / "embeddings"


def encode_texts(
    texts: list[str],
    encoder: TextEncoder,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = False,
    write_batch: int = _WRITE_BATCH,
    stream: Callable[[list[str]], Iterable[np.ndarray]] | None = None,
) -> EncodeResult:
    """Vectors for `texts`, from the cache where present; new ones are encoded and stored in batches,
    so a run that is killed keeps what it finished.

    `stream` encodes elsewhere (a Ray cluster, `shelfwise.distributed`): given the texts to encode,
    it yields their vectors in order, in chunks; each chunk is stored as it arrives."""
    started = time.perf_counter()
    keys = [text_key(text) for text in texts]
    slot: dict[bytes, int] = {}
    unique_texts = []
    for key, text in zip(keys, texts, strict=True):
        if key not in slot:
            slot[key] = len(slot)
            unique_texts.append(text)
    unique_keys = list(slot)

    def local(pending: list[str]) -> Iterator[np.ndarray]:
        for start in range(0, len(pending), write_batch):
            yield encoder.encode(pending[start : start + write_batch], progress=progress)

    with EmbeddingCache(cache_dir or default_cache_dir()) as cache:
        matrix, found = cache.read_into(encoder.name, unique_keys, None)
        missing = np.flatnonzero(~found)
        done = 0
        pending = [unique_texts[row] for row in missing]
        for vectors in (stream or local)(pending) if len(missing) else ():
            rows = missing[done : done + len(vectors)]
            cache.put(encoder.name, [unique_keys[row] for row in rows], vectors)
            if matrix.shape[1] != vectors.shape[1]:  # nothing was cached: the dimension is known now
                matrix = np.zeros((len(unique_keys), vectors.shape[1]), dtype=np.float32)
            matrix[rows] = vectors
            done += len(vectors)
        if done != len(missing):
            raise ShelfwiseError(f"The encoder returned {done} vectors for {len(missing)} texts.")
    if len(unique_keys) != len(keys):  # repeated texts share their vector
        matrix = matrix[np.fromiter((slot[key] for key in keys), dtype=np.int64, count=len(keys))]
    fresh = np.zeros(len(unique_keys), dtype=bool)
    fresh[missing] = True
    encoded = int(sum(fresh[slot[key]] for key in keys))
    return EncodeResult(matrix, len(keys), encoded, len(keys) - encoded, time.perf_counter() - started)


def encode_items(
    items: pd.DataFrame,
    encoder: TextEncoder,
    *,
    template: ItemTextTemplate | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = False,
    stream: Callable[[list[str]], Iterable[np.ndarray]] | None = None,
) -> EncodeResult:
    """Compose each item's text and encode it through the cache (see `encode_texts` for `stream`)."""
    texts = (template or ItemTextTemplate()).compose_all(items)
    return encode_texts(texts, encoder, cache_dir=cache_dir, progress=progress, stream=stream)
