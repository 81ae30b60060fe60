"""Serving artifacts: what `shelfwise train` (or `shelfwise build`, through `engine.build`) writes
into a model folder's ``serving/`` so that `serve` maps it instead of rebuilding it on every start;
this module names them and reads them.

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
from dataclasses import dataclass
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
