"""The served model: one loaded model folder and everything scored from it, behind one object.

`ServedModel` owns the model and how its item indices map onto catalog positions (growing with new
items), its vector index, the placement of the items it does not know (`cold_items`: added after
training, placed in its space by their text once, when they arrive), its query cache, and the
scores an answer asks of it: over the whole catalog after a history (`catalog_scores`), the best
allowed candidates (`candidates`: through its index where its scores are inner products), and how
alike items are (`similar_scores`). Items it does not know get, on models without an index, their
text score mapped by quantile onto the model's score distribution over a sample of known items, so
a new item that matches a shopper's history as well as the model's best candidates do ranks among
them. The folder on disk (read, lock, version, privacy scrub) is `model_folder`'s.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from shelfwise.data.dataset import Dataset
from shelfwise.engine.catalog import CatalogSnapshot
from shelfwise.engine.cold_items import ColdPlacement, place_items
from shelfwise.engine.model_folder import erase_user, model_version
from shelfwise.errors import ShelfwiseError, UnknownIdError
from shelfwise.models import Recommender
from shelfwise.models.content import text_profile
from shelfwise.ranking import masked_topk
from shelfwise.retrieval import VectorIndex
from shelfwise.settings import Settings
from shelfwise.store.base import user_hash

#: Items a quantile mapping compares cold items against (all of them below this count).
CALIBRATION_SAMPLE = 2_000
#: How many candidates the model index returns per answer (before filters already applied inside).
RETRIEVE_DEPTH = 100


@dataclass(frozen=True)
class TextVectors:
    """The catalog's text vectors as a read took them, and their `VectorIndex.revision`."""

    vectors: np.ndarray
    revision: int = 0


@dataclass
class ServedModel:
    """One loaded model served over the catalog (see the module's docstring). Readers take the
    engine's current `ServedModel` once per answer; a reload swaps in another one."""

    model: Recommender
    model_dir: Path
    version: str
    model_items: np.ndarray  # model item index -> catalog position
    catalog_to_model: np.ndarray  # catalog position -> model item index or -1 (grows with the catalog)
    index: VectorIndex | None = None  # over the model's scoring vectors, when its scores are inner products
    loaded_at: float = field(default_factory=time.time)
    user_ids: np.ndarray | None = None  # the model's shoppers (model user index -> external id)
    _user_hashes: dict[str, int] | None = field(default=None, repr=False)
    #: Items the model does not know, in its vector space (models with an index; see `place_cold`)
    placed: ColdPlacement | None = None
    _cold: tuple[int, int, np.ndarray] | None = field(default=None, repr=False)
    _reference: tuple[tuple, np.ndarray] | None = field(default=None, repr=False)
    #: The query vectors of recent histories (`query_vector`), and how many it may keep, least
    #: recently used out first (the setting ``query_cache``; 0: none).
    query_cache: int = Settings.query_cache
    _queries: OrderedDict[bytes, np.ndarray] = field(default_factory=OrderedDict, repr=False)
    _queries_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _items_in_order: bool | None = field(default=None, repr=False)

    def query_vector(self, known: np.ndarray) -> np.ndarray:
        """The model's query vector after a history of its item indices (read-only). The network
        runs once per distinct history: a shopper's answers between two of their events, on any
        page, reuse it. Keyed by a digest of the history itself, so an event (through any replica)
        or a reload (a new generation) is never answered from a stale entry."""
        if self.query_cache <= 0:
            return self.model.query_vectors([known])[0]
        key = hashlib.blake2b(np.ascontiguousarray(known, dtype=np.int64).tobytes(), digest_size=16).digest()
        with self._queries_lock:
            vector = self._queries.get(key)
            if vector is not None:
                self._queries.move_to_end(key)
                return vector
        vector = self.model.query_vectors([known])[0]
        vector.setflags(write=False)
        with self._queries_lock:
            self._queries[key] = vector
            while len(self._queries) > self.query_cache:
                self._queries.popitem(last=False)
        return vector

    def model_mask(self, mask: np.ndarray) -> np.ndarray:
        """`mask` (over catalog positions) over the model's items: a view where the model's items are
        the catalog's first positions in order (a model trained on the catalog it serves), a gather
        otherwise."""
        if self._items_in_order is None:
            self._items_in_order = bool(np.array_equal(self.model_items, np.arange(len(self.model_items))))
        return mask[: len(self.model_items)] if self._items_in_order else mask[self.model_items]

    def forget_queries(self) -> None:
        """Drop every kept query vector (a shopper was deleted: nothing derived from their history stays)."""
        with self._queries_lock:
            self._queries.clear()

    def user_index_by_hash(self, digest: str) -> int | None:
        """The model's index of the shopper whose id hashes to `digest` (`store.sql.user_hash`)."""
        if self.user_ids is None:
            return None
        if self._user_hashes is None:
            self._user_hashes = {user_hash(str(u)): i for i, u in enumerate(self.user_ids)}
        return self._user_hashes.get(digest)

    def cold_positions(self, n: int) -> np.ndarray:
        """Catalog positions below `n` that the model does not know (items added after it was trained);
        kept until the catalog grows (the map only ever grows, so the pair of lengths names it)."""
        to_model = self.catalog_to_model
        known = self._cold
        if known is not None and known[0] == n and known[1] == len(to_model):
            return known[2]
        cold = np.flatnonzero(to_model[:n] < 0)
        if len(to_model) < n:
            cold = np.concatenate([cold, np.arange(len(to_model), n)])
        self._cold = (n, len(to_model), cold)
        return cold

    def _reference_vectors(self, vectors: np.ndarray, revision: int) -> np.ndarray:
        """The text vectors of the calibration sample's items, one contiguous matrix, kept while the
        text vectors are the same array at the same `revision` (`VectorIndex.revision`)."""
        key = (vectors.__array_interface__["data"][0], revision)
        known = self._reference
        if known is None or known[0] != key:
            known = (key, np.ascontiguousarray(vectors[self.model_items[self._calibration_sample()]]))
            self._reference = known
        return known[1]

    def _calibration_sample(self) -> np.ndarray:
        """Model item indices (at most about `CALIBRATION_SAMPLE`) cold items are calibrated against."""
        count = len(self.model_items)
        step = count // CALIBRATION_SAMPLE + 1 if count > CALIBRATION_SAMPLE else 1
        return np.arange(0, count, step)

    def new_mask(self, recent: np.ndarray) -> np.ndarray:
        """Which catalog positions are new: created recently (`recent`, a mask over the catalog) or
        unknown to the model (added after it was trained)."""
        n = len(recent)
        to_model = self.catalog_to_model
        cold = np.ones(n, dtype=bool)
        cold[: min(n, len(to_model))] = to_model[:n] < 0
        return cold | recent

    def place_cold(self, positions: np.ndarray, text: VectorIndex) -> None:
        """Place (or place again, after their text changed) the catalog `positions` the model does not
        know in its vector space (`cold_items`), for a model with a vector index; `text` is the
        catalog's text index. Callers hold the engine's write lock; readers see the whole new placement."""
        if self.index is None:
            return
        positions = np.unique(np.asarray(positions, dtype=np.int64))
        positions = positions[self.model_index_of(positions) < 0]
        if len(positions) == 0:
            return
        vectors = place_items(self.model, self.index.vectors, positions, self.catalog_to_model, text)
        self.placed = (self.placed or ColdPlacement.empty(self.index.dim)).with_items(positions, vectors)

    def model_index_of(self, positions: np.ndarray) -> np.ndarray:
        out = np.full(len(positions), -1, dtype=np.int64)
        inside = positions < len(self.catalog_to_model)
        out[inside] = self.catalog_to_model[positions[inside]]
        return out

    @classmethod
    def load(
        cls,
        model: Recommender,
        dataset: Dataset,
        model_dir: Path,
        catalog: CatalogSnapshot,
        index_kind: str,
        text: VectorIndex | None = None,
        *,
        query_cache: int = Settings.query_cache,
    ) -> ServedModel:
        """`model` (trained on `dataset`) served over `catalog`, with a vector index of kind `index_kind`
        over its scoring vectors where its scores are inner products (mapped from the folder's serving
        artifacts where they hold it for these vectors, built otherwise), and the catalog's items it
        does not know placed in its space (`place_cold`) by `text`, the catalog's text index; it keeps
        `query_cache` query vectors."""
        positions = np.array([catalog.index[str(i)] for i in dataset.item_ids], dtype=np.int64)
        to_model = np.full(len(catalog), -1, dtype=np.int64)
        to_model[positions] = np.arange(len(positions))
        index = mapped_model_index(model, model_dir, index_kind) or model_index(model, index_kind)
        served = cls(
            model,
            model_dir,
            model_version(model_dir),
            positions,
            to_model,
            index,
            user_ids=dataset.user_ids.copy(),
            query_cache=query_cache,
        )
        if text is not None:
            served.place_cold(served.cold_positions(len(catalog)), text)
        return served

    # ------------------------------------------------------------------------------- scores
    def catalog_scores(self, positions: np.ndarray, n: int, text: TextVectors, popularity: np.ndarray) -> np.ndarray:
        """Scores over the first `n` catalog positions after a history of catalog positions."""
        model_positions = self.model_index_of(positions)
        known = model_positions[model_positions >= 0]
        placement = self.placed
        if len(known) and placement is not None and self.index is not None:
            query = self.query_vector(known)  # inner products: placed items score alike
            scores = np.full(n, -np.inf)
            scores[self.model_items] = self.index.vectors @ query
            placed, placed_scores = placement.scores(query, n)
            scores[placed] = placed_scores
            return scores
        # with no history the model knows: popularity over the model's items
        model_scores = self.model.score_histories([known])[0] if len(known) else np.log1p(popularity[self.model_items])
        return self._with_cold(model_scores, _TextScorer(positions, text.vectors, popularity), text, n)

    def candidates(
        self,
        positions: np.ndarray,
        mask: np.ndarray,
        depth: int,
        text: TextVectors,
        popularity: np.ndarray,
        *,
        exact: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The best `depth` allowed catalog positions (and scores) after a history of catalog
        positions: through the model's vector index where it has one (`exact`: by scoring every
        item, as models without one always do)."""
        retrieved = None if exact else self._retrieve(positions, mask, depth)
        if retrieved is not None:
            return retrieved
        return masked_topk(self.catalog_scores(positions, len(mask), text, popularity), mask, depth)

    def similar_scores(self, position: int, text: TextVectors, n: int) -> np.ndarray | None:
        """Scores over the first `n` catalog positions of how alike each item is to the one at
        `position`: the model's similarity where it knows the item and has one (items it does not know
        placed by text cosine, as in `_with_cold`); None where it does not know it or has none."""
        model_index = self.model_index_of(np.array([position]))[0]
        if model_index < 0:
            return None
        try:
            model_scores = self.model.similarity_scores(np.array([model_index]))[0]
        except NotImplementedError:
            return None
        if not np.isfinite(model_scores).any() or np.ptp(model_scores) == 0:
            return None
        anchor = text.vectors[position]
        return self._with_cold(model_scores, lambda _targets, matrix: matrix @ anchor, text, n)

    def _retrieve(self, positions: np.ndarray, mask: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The best `depth` allowed catalog positions through the model's vector index (None when
        the model has no index, or the history holds nothing the model knows). Items added after
        training join from their placement in the model's space (`place_cold`)."""
        if self.index is None:
            return None
        model_positions = self.model_index_of(positions)
        known = model_positions[model_positions >= 0]
        if len(known) == 0:
            return None
        query = self.query_vector(known)
        ids, scores = self.index.search(query, max(depth, RETRIEVE_DEPTH), self.model_mask(mask))
        candidates, values = self.model_items[ids], scores.astype(np.float64)
        placement = self.placed
        if placement is not None:
            cold, cold_scores = placement.search(query, mask, depth)
            candidates = np.concatenate([candidates, cold])
            values = np.concatenate([values, cold_scores])
        order = np.lexsort((candidates, -values))[:depth]
        return candidates[order], values[order]

    def _with_cold(
        self,
        model_scores: np.ndarray,
        text_scores: Callable[[np.ndarray, np.ndarray], np.ndarray],
        text: TextVectors,
        n: int,
    ) -> np.ndarray:
        """Catalog-wide scores: the model's where it knows the item; for the others (`text_scores` of
        catalog positions and their text vectors), their text score mapped by quantile onto the
        distribution of model scores over a sample of known items."""
        scores = np.full(n, -np.inf)
        scores[self.model_items] = model_scores
        cold = self.cold_positions(n)
        if len(cold) == 0:
            return scores
        known = self.model_items[self._calibration_sample()]
        cold_text = text_scores(cold, _cold_vectors(text.vectors, cold))
        reference_model = scores[known]
        finite = np.isfinite(reference_model)
        if not finite.any():
            scores[cold] = cold_text
            return scores
        reference = text_scores(known, self._reference_vectors(text.vectors, text.revision))
        scores[cold] = map_by_quantile(cold_text, reference, reference_model[finite])
        return scores

    # ------------------------------------------------------------------------------- the catalog grows
    def grow(self, added: int) -> None:
        """The catalog gained `added` items (unknown to the model) after its last position. Callers
        hold the engine's write lock and publish the catalog snapshot that names them afterwards."""
        if added:
            self.catalog_to_model = np.concatenate([self.catalog_to_model, np.full(added, -1, dtype=np.int64)])

    # ------------------------------------------------------------------------------- privacy
    def forget_user(self, user_id: str) -> dict[str, int]:
        """Erase the shopper from the served model (in memory) and from its folder: their training
        events and model state. Says what it removed."""

        def locate(dataset: Dataset) -> int | None:
            try:
                return int(dataset.user_index(user_id))
            except UnknownIdError:
                return None

        removed = erase_user(self.model_dir, locate)
        self.version = model_version(self.model_dir)
        if self.user_ids is not None:
            known = np.flatnonzero(self.user_ids.astype(str) == user_id)
            user = int(known[0]) if len(known) else None
        else:  # made without its shoppers' ids: the folder's index
            user = locate(Dataset.load(self.model_dir / "dataset"))
        if user is not None:
            self._forget_in_memory(user)
        return removed

    def forget_index(self, user: int, *, in_folder: bool) -> None:
        """Erase the model's shopper `user` (an index) from the served model, and from its folder where
        `in_folder` and the folder still holds them (a replica sharing the folder has erased them there)."""
        held = self.user_ids
        if in_folder and held is not None:
            erase_user(
                self.model_dir,
                lambda dataset: (
                    user if user < len(dataset.user_ids) and str(dataset.user_ids[user]) == str(held[user]) else None
                ),
            )
            self.version = model_version(self.model_dir)
        self._forget_in_memory(user)

    def _forget_in_memory(self, user: int) -> None:
        self.model.forget_user(user)
        if self.user_ids is not None and user < len(self.user_ids):
            self.user_ids[user] = f"(deleted {user})"
            self._user_hashes = None
        self.forget_queries()


class _TextScorer:
    """Text scores after a history: half the cosine to the history's text profile (the one
    `models.content.text_profiles`, which the sequential model's text part reads too), half the best
    cosine to one of its last ten items (so a new twin of something just bought ranks high);
    popularity when there is no history."""

    def __init__(self, positions: np.ndarray, vectors: np.ndarray, popularity: np.ndarray) -> None:
        self.popularity = popularity
        self.empty = len(positions) == 0
        if not self.empty:  # the profile and the last ten items side by side: one matrix product
            profile = text_profile(positions, vectors)
            self.anchors = np.ascontiguousarray(np.column_stack([profile, vectors[positions[-10:]].T]), np.float32)

    def __call__(self, targets: np.ndarray, target_vectors: np.ndarray) -> np.ndarray:
        """Scores of the catalog positions `targets`, whose text vectors are `target_vectors`."""
        if self.empty:
            return np.log1p(self.popularity[targets])
        cosines = target_vectors @ self.anchors
        return 0.5 * cosines[:, 0] + 0.5 * cosines[:, 1:].max(axis=1)


def _cold_vectors(vectors: np.ndarray, cold: np.ndarray) -> np.ndarray:
    """The text vectors of the cold positions: a view where they are one run (items added after
    training follow the trained ones in the catalog), a gathered copy otherwise."""
    if len(cold) and cold[-1] - cold[0] + 1 == len(cold):
        return vectors[cold[0] : cold[-1] + 1]
    return vectors[cold]


def model_index(model: Recommender, kind: str) -> VectorIndex | None:
    """A vector index over the model's scoring vectors (None for a model whose scores are not
    inner products)."""
    vectors = model.scoring_vectors()
    if vectors is None:
        return None
    index = VectorIndex(vectors.shape[1], kind=kind, normalize=False)
    index.add(vectors)
    return index


def vectors_digest(vectors: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(vectors, dtype=np.float32).tobytes()).hexdigest()


def mapped_model_index(model: Recommender, model_dir: Path, kind: str) -> VectorIndex | None:
    """The model's vector index from the folder's serving artifacts, when they hold one of this kind
    over exactly these vectors."""
    folder = Path(model_dir) / "serving"
    vectors = model.scoring_vectors()
    if vectors is None or not (folder / "model_index.json").is_file():
        return None
    try:
        meta = json.loads((folder / "model_index.json").read_text())
        if meta.get("kind") != kind or meta.get("sha256") != vectors_digest(vectors):
            return None
        return VectorIndex.open(folder, "model_index")
    except (OSError, ValueError, ShelfwiseError):
        return None


def map_by_quantile(cold_text: np.ndarray, reference_text: np.ndarray, reference_model: np.ndarray) -> np.ndarray:
    """Each cold item's text score, as its quantile among the reference items' text scores, read off
    the reference items' model scores at that quantile."""
    quantile = np.searchsorted(np.sort(reference_text), cold_text, side="right") / max(len(reference_text), 1)
    ordered = np.sort(reference_model)  # np.quantile's linear method, one sort for every quantile
    return np.interp(np.clip(quantile, 0.0, 1.0) * (len(ordered) - 1), np.arange(len(ordered)), ordered)
