"""`CatalogText`: what the engine knows of the catalog's words. The encoder, each item's text vector
and the vector index over them, the lexical (BM25) index, query vectors, the interest keywords'
vectors and search's noise floor. Catalog changes are staged here (texts encoded beside the published
catalog) and applied before the engine publishes the snapshot that names them."""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from shelfwise.engine.artifacts import TextArtifacts, fingerprints, read_text_artifacts
from shelfwise.engine.catalog import CatalogSnapshot
from shelfwise.engine.served import TextVectors
from shelfwise.engine.understanding import noise_floor
from shelfwise.retrieval import VectorIndex
from shelfwise.retrieval.lexical import LexicalIndex
from shelfwise.store import ItemRecord
from shelfwise.text import create_encoder
from shelfwise.text.item_text import ItemTextTemplate
from shelfwise.text.pipeline import encode_texts

logger = logging.getLogger(__name__)

#: Catalog size from which ``index="auto"`` uses faiss HNSW instead of exact search.
HNSW_FROM = 50_000
#: At most this many catalog words are encoded as interest keywords for profiles.
KEYWORD_TERMS = 3_000
#: Query vectors kept (a plain bound: queries repeat far less than items).
_QUERY_CACHE = 4096


@dataclass(frozen=True)
class StagedItems:
    """Catalog changes prepared beside the published catalog: the next snapshot, the positions it
    adds and those whose text changed, and their composed texts and vectors (added ones first)."""

    snapshot: CatalogSnapshot
    added: list[int]
    changed: list[int]
    texts: list[str]
    vectors: np.ndarray


class CatalogText:
    """The text side of `catalog` (vectors and indexes built now, through the embedding cache).

    Args:
        encoder: an encoder spec (`shelfwise.text.create_encoder`).
        index: ``exact``, ``hnsw`` (faiss) or ``auto`` (HNSW from `HNSW_FROM` items on).
        cache_dir: the embedding cache's folder (default: shelfwise's).
    """

    def __init__(
        self,
        catalog: CatalogSnapshot,
        *,
        encoder: str,
        index: str,
        cache_dir: str | None = None,
        artifacts_from: Path | None = None,
    ) -> None:
        self.cache_dir = cache_dir
        self._encoder_spec = encoder
        self._encoder = None
        self.template = ItemTextTemplate()
        self.index_kind = index if index != "auto" else ("hnsw" if len(catalog) >= HNSW_FROM else "exact")
        self._query_vectors: dict[str, np.ndarray] = {}
        self._keywords: tuple[int, list[str], np.ndarray] | None = None  # (lexical version, terms, vectors)
        self._lock = threading.Lock()
        self._floor: tuple[int, float] | None = None  # (catalog size it was measured on, the floor)
        self.from_artifacts = False
        if artifacts_from is not None:
            artifacts = read_text_artifacts(
                artifacts_from, encoder=self.encoder_name, template=asdict(self.template), index_kind=self.index_kind
            )
            self.from_artifacts = artifacts is not None and self._open(catalog, artifacts)
        if not self.from_artifacts:
            texts = self._texts(catalog, np.arange(len(catalog)))  # composed once: encoder and lexical index
            vectors = self._encode(texts)
            self.index = VectorIndex(vectors.shape[1], kind=self.index_kind)
            self.index.add(vectors)
            self.lexical = LexicalIndex()
            self.lexical.set(range(len(catalog)), texts)
            self.lexical.prepare()  # the first shopper's search does not pay for it
            self.semantic_floor()  # the first search does not pay for it

    def _open(self, catalog: CatalogSnapshot, artifacts: TextArtifacts) -> bool:
        """Map the artifacts' vectors and indexes; encode the items the store holds otherwise than
        they were trained (their text changed) or that came after them. False where the catalog's
        first items are mostly not the artifacts' (the caller builds everything)."""
        n0 = len(artifacts)
        if len(catalog) < n0:
            return False
        same = (fingerprints(catalog.records[:n0]) == artifacts.fingerprints).all(axis=1)
        if n0 and same.mean() < 0.5:
            logger.info("serving artifacts: most items differ from the store's catalog; building instead")
            return False
        index = VectorIndex.open(artifacts.folder, "text")
        lexical = LexicalIndex.open(artifacts.folder / "lexical")
        changed = np.flatnonzero(~same)
        redo = np.concatenate([changed, np.arange(n0, len(catalog))])
        if len(redo):
            texts = self._texts(catalog, redo)
            vectors = self._encode(texts)
            if len(changed):
                index.update(changed, vectors[: len(changed)])
            if len(redo) > len(changed):
                index.add(vectors[len(changed) :])
            lexical.set(redo.tolist(), texts)
        self.index, self.lexical, self._floor = index, lexical, artifacts.floor
        logger.info(
            "serving artifacts: mapped %d items' vectors and indexes (%d re-encoded, %d added since)",
            n0,
            len(changed),
            len(redo) - len(changed),
        )
        return True

    def warm(self) -> threading.Thread:
        """Load the encoder and the spelling index in the background (a start from artifacts does not
        wait for them; the first search would)."""

        def work() -> None:
            try:
                self.encoder.encode(["warm"])
                self.lexical.prepare()
                self.semantic_floor()
            except Exception:  # the first request that needs them reports the error
                logger.exception("warming the text side failed")

        thread = threading.Thread(target=work, name="shelfwise-warm", daemon=True)
        thread.start()
        return thread

    @property
    def encoder_name(self) -> str:
        return self.encoder.name

    @property
    def encoder(self):
        if self._encoder is None:
            self._encoder = create_encoder(self._encoder_spec)
        return self._encoder

    @property
    def vectors(self) -> np.ndarray:
        """Item text vectors by catalog position (at least as many as the published catalog has)."""
        return self.index.vectors

    def view(self) -> TextVectors:
        """The text vectors as they are now, with the revision that says when they change in place."""
        return TextVectors(self.index.vectors, self.index.revision)

    def _encode(self, texts: list[str]) -> np.ndarray:
        return encode_texts(texts, self.encoder, cache_dir=self.cache_dir).vectors

    def _texts(self, catalog: CatalogSnapshot, positions: np.ndarray) -> list[str]:
        return self.template.compose_all(catalog.frame(positions))

    def query_vector(self, text: str) -> np.ndarray:
        vector = self._query_vectors.get(text)
        if vector is None:
            vector = self.encoder.encode([text])[0].astype(np.float32)
            if len(self._query_vectors) >= _QUERY_CACHE:
                self._query_vectors.clear()
            self._query_vectors[text] = vector
        return vector

    def semantic_floor(self) -> float:
        """The catalog's `noise_floor` for search, measured at start (again once the catalog has
        grown by a quarter)."""
        vectors = self.vectors
        floor = self._floor
        if floor is None or len(vectors) > 1.25 * floor[0]:
            with self._lock:
                value = noise_floor(vectors, lambda texts: self.encoder.encode(texts))
                self._floor = floor = (len(vectors), value)
        return floor[1]

    def keyword_vectors(self) -> tuple[list[str], np.ndarray]:
        """The catalog's most frequent content words and their vectors (encoded once, through the
        embedding cache; again when the catalog's vocabulary has grown)."""
        with self._lock:
            version = self.lexical.version
            if self._keywords is None or self._keywords[0] != version:
                terms = self.lexical.vocabulary(max_terms=KEYWORD_TERMS)
                vectors = self._encode(terms) if terms else np.zeros((0, self.index.dim), dtype=np.float32)
                self._keywords = (version, terms, vectors)
            return self._keywords[1], self._keywords[2]

    def stage(self, current: CatalogSnapshot, records: list[ItemRecord]) -> StagedItems:
        """The next catalog snapshot with `records` and the text vectors of every new or re-worded
        item, built beside `current` (nothing a reader sees changes yet)."""
        snapshot, added, updated = current.with_records(records)
        compose = self.template.compose
        changed = [
            p
            for p in updated
            if compose(_text_fields(current.records[p])) != compose(_text_fields(snapshot.records[p]))
        ]
        positions = np.array(added + changed, dtype=np.int64)
        texts = self._texts(snapshot, positions) if len(positions) else []
        vectors = self._encode(texts) if texts else np.zeros((0, self.index.dim), dtype=np.float32)
        return StagedItems(snapshot, added, changed, texts, vectors)

    def apply(self, staged: StagedItems) -> None:
        """Grow the vectors and the lexical index by the staged items, and re-word the changed ones
        (before the engine publishes the snapshot that names them)."""
        added = len(staged.added)
        if added:
            self.index.add(staged.vectors[:added])
            self.lexical.set(staged.added, staged.texts[:added])
        if staged.changed:
            self.index.update(np.array(staged.changed), staged.vectors[added:])
            self.lexical.set(staged.changed, staged.texts[added:])


def _text_fields(record: ItemRecord) -> dict:
    return {
        "title": record.title,
        "brand": record.brand,
        "category": record.category,
        "description": record.description,
        "tags": [t.strip() for t in record.tags.split(",") if t.strip()],
    }
