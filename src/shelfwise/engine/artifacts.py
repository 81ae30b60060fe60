"""Serving artifacts: what `shelfwise train` (or `shelfwise build`) writes into a model folder's
``serving/`` so that `serve` maps it instead of rebuilding it on every start.

- ``text.npy`` / ``text.faiss`` / ``text.json``: the training catalog's item text vectors (in the
  data set's item order) and, for an HNSW index, its graph (`VectorIndex.save`);
- ``lexical/``: the BM25 index's term counts and weights (`LexicalIndex.save`);
- ``model_index.*``: the vector index over the model's scoring vectors, for models whose scores are
  inner products;
- ``fingerprints.npy``: one 16-byte digest per item of its id and text fields, so a start can tell
  which items the store still holds as they were trained (the others are encoded again);
- ``manifest.json``: the encoder, the item text template, the index kind and the search noise floor.

Every process that serves the folder maps the same files read-only (copy-on-write), so N workers hold
one copy of the vectors and graphs in the page cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from shelfwise.store import ItemRecord

logger = logging.getLogger(__name__)

SERVING = "serving"
FORMAT = 1


def fingerprints(records: list[ItemRecord]) -> np.ndarray:
    """A 16-byte digest per record of its id and the fields item text is composed from."""
    out = bytearray()
    for r in records:
        fields = "\x1f".join((r.item_id, r.title, r.description, r.category, r.brand, r.tags))
        out += hashlib.blake2b(fields.encode("utf-8", "surrogatepass"), digest_size=16).digest()
    return np.frombuffer(bytes(out), dtype=np.uint8).reshape(len(records), 16)


@dataclass(frozen=True)
class TextArtifacts:
    """The text side of a model folder's serving artifacts, as `read_text_artifacts` found them."""

    folder: Path
    encoder: str
    template: dict
    index_kind: str
    floor: tuple[int, float] | None
    fingerprints: np.ndarray

    def __len__(self) -> int:
        return len(self.fingerprints)


def serving_folder(model_dir: Path) -> Path:
    return Path(model_dir) / SERVING


def read_text_artifacts(model_dir: Path, *, encoder: str, template: dict, index_kind: str) -> TextArtifacts | None:
    """The folder's text artifacts when they were built with this encoder, template and index kind
    (None, and a log line saying why, otherwise: the caller builds them)."""
    folder = serving_folder(model_dir)
    manifest_file = folder / "manifest.json"
    if not manifest_file.is_file():
        logger.info("serving artifacts: none in %s (run `shelfwise build` to start in seconds)", model_dir)
        return None
    try:
        manifest = json.loads(manifest_file.read_text())
        prints = np.load(folder / "fingerprints.npy", mmap_mode="r")
    except (OSError, ValueError) as exc:
        logger.warning("serving artifacts in %s are not readable (%s); building instead", folder, exc)
        return None
    wanted = {"format": FORMAT, "encoder": encoder, "template": template, "index": index_kind}
    found = {name: manifest.get(name) for name in wanted}
    if found != wanted:
        differs = [name for name in wanted if found[name] != wanted[name]]
        logger.info("serving artifacts in %s were built for another %s; building instead", folder, differs)
        return None
    floor = manifest.get("floor")
    return TextArtifacts(
        folder, encoder, template, index_kind, None if floor is None else (int(floor[0]), float(floor[1])), prints
    )


def write_serving_artifacts(
    model_dir: Path, *, encoder: str | None = None, index: str = "auto", cache_dir: str | None = None
) -> dict:
    """Build every serving artifact of a trained model folder (its data set's catalog) and write them
    to ``serving/`` (replacing what was there in one rename). Returns what was written."""
    from shelfwise.engine.catalog import EMPTY
    from shelfwise.engine.catalog_text import CatalogText
    from shelfwise.engine.generation import folder_lock, model_index, read_model_dir, vectors_digest
    from shelfwise.engine.seeding import item_records
    from shelfwise.settings import load_settings

    started = time.perf_counter()
    model_dir = Path(model_dir)
    model, dataset = read_model_dir(model_dir)
    records = item_records(dataset)
    catalog, _, _ = EMPTY.with_records(records)
    text = CatalogText(catalog, encoder=encoder or load_settings().encoder, index=index, cache_dir=cache_dir)
    staging = model_dir / f".{SERVING}.{os.getpid()}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    text.index.save(staging, "text")
    text.lexical.save(staging / "lexical")
    np.save(staging / "fingerprints.npy", fingerprints(records))
    vectors = model.scoring_vectors()
    built = model_index(model, text.index_kind)
    if built is not None and vectors is not None:
        built.save(staging, "model_index", sha256=vectors_digest(vectors))
    manifest = {
        "format": FORMAT,
        "encoder": text.encoder_name,
        "template": asdict(text.template),
        "index": text.index_kind,
        "items": len(records),
        "floor": [len(records), text.semantic_floor()],
        "model_index": None if built is None else built.kind,
        "built_at": time.time(),
    }
    (staging / "manifest.json").write_text(json.dumps(manifest, indent=1))
    target = serving_folder(model_dir)
    with folder_lock(model_dir, exclusive=True):
        old = model_dir / f".{SERVING}.{os.getpid()}.old"
        if target.exists():
            os.replace(target, old)
        os.replace(staging, target)
        shutil.rmtree(old, ignore_errors=True)
    size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
    return {
        "folder": str(target),
        "items": len(records),
        "index": text.index_kind,
        "model_index": manifest["model_index"],
        "megabytes": round(size / 2**20, 1),
        "seconds": round(time.perf_counter() - started, 1),
    }
