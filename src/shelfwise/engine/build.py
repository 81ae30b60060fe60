"""The build step: a trained model folder's serving artifacts (`engine.artifacts` names and reads
them) encoded, indexed and written into its ``serving/`` folder in one rename."""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from shelfwise.engine.artifacts import FORMAT, SERVING, fingerprints, serving_folder
from shelfwise.engine.catalog import EMPTY
from shelfwise.engine.catalog_text import CatalogText
from shelfwise.engine.model_folder import folder_lock, read_model_dir
from shelfwise.engine.served import model_index, vectors_digest
from shelfwise.engine.store_fill import item_records
from shelfwise.settings import load_settings


def write_serving_artifacts(
    model_dir: Path, *, encoder: str | None = None, index: str = "auto", cache_dir: str | None = None
) -> dict:
    """Build every serving artifact of a trained model folder (its data set's catalog) and write them
    to ``serving/`` (replacing what was there in one rename). Returns what was written."""
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
