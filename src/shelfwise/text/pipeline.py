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

    def local(pending: list[str]) -> Iterator[np.ndarray]:
        for start in range(0, len(pending), write_batch):
            yield encoder.encode(pending[start : start + write_batch], progress=progress)

    with EmbeddingCache(cache_dir or default_cache_dir()) as cache:
        found = cache.get(encoder.name, keys)
        missing = list(dict.fromkeys(k for k in keys if k not in found))
        text_of = dict(zip(keys, texts, strict=True))
        done = 0
        for vectors in (stream or local)([text_of[k] for k in missing]) if missing else ():
            batch = missing[done : done + len(vectors)]
            cache.put(encoder.name, batch, vectors)
            found.update(zip(batch, vectors, strict=True))
            done += len(vectors)
        if done != len(missing):
            raise ShelfwiseError(f"The encoder returned {done} vectors for {len(missing)} texts.")
    missing_set = set(missing)
    encoded = sum(1 for key in keys if key in missing_set)
    dim = len(next(iter(found.values()))) if found else 0
    matrix = np.vstack([found[key] for key in keys]) if keys else np.zeros((0, dim), np.float32)
    return EncodeResult(
        matrix.astype(np.float32), len(keys), encoded, len(keys) - encoded, time.perf_counter() - started
    )


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
