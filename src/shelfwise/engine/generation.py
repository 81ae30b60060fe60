"""A loaded model and what serving needs beside it: how its item indices map onto catalog positions,
its vector index, and its folder, read (a damaged folder is a `DataFormatError`) and rewritten when a
shopper is forgotten."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from shelfwise.data.dataset import Dataset
from shelfwise.engine.catalog import CatalogSnapshot
from shelfwise.engine.cold_items import ColdPlacement, place_items
from shelfwise.errors import DataFormatError, ShelfwiseError, UnknownIdError
from shelfwise.models import Recommender
from shelfwise.retrieval import VectorIndex
from shelfwise.settings import Settings, load_settings
from shelfwise.store.base import user_hash

#: Items a quantile mapping compares cold items against (all of them below this count).
CALIBRATION_SAMPLE = 2_000


@dataclass
class Generation:
    """One loaded model and how its item indices map onto catalog positions."""

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

    def reference_vectors(self, vectors: np.ndarray, revision: int) -> np.ndarray:
        """The text vectors of the calibration sample's items, one contiguous matrix, kept while the
        text vectors are the same array at the same `revision` (`VectorIndex.revision`)."""
        key = (vectors.__array_interface__["data"][0], revision)
        known = self._reference
        if known is None or known[0] != key:
            known = (key, np.ascontiguousarray(vectors[self.model_items[self.calibration_sample()]]))
            self._reference = known
        return known[1]

    def calibration_sample(self) -> np.ndarray:
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


def make_generation(
    model: Recommender,
    dataset: Dataset,
    model_dir: Path,
    catalog: CatalogSnapshot,
    index_kind: str,
    text: VectorIndex | None = None,
) -> Generation:
    """`model` (trained on `dataset`) served over `catalog`, with a vector index of kind `index_kind`
    over its scoring vectors where its scores are inner products (mapped from the folder's serving
    artifacts where they hold it for these vectors, built otherwise), and the catalog's items it does
    not know placed in its space (`Generation.place_cold`) by `text`, the catalog's text index; it
    keeps as many query vectors as the setting ``query_cache`` says."""
    positions = np.array([catalog.index[str(i)] for i in dataset.item_ids], dtype=np.int64)
    to_model = np.full(len(catalog), -1, dtype=np.int64)
    to_model[positions] = np.arange(len(positions))
    index = mapped_model_index(model, model_dir, index_kind) or model_index(model, index_kind)
    generation = Generation(
        model,
        model_dir,
        model_version(model_dir),
        positions,
        to_model,
        index,
        user_ids=dataset.user_ids.copy(),
        query_cache=load_settings().query_cache,
    )
    if text is not None:
        generation.place_cold(generation.cold_positions(len(catalog)), text)
    return generation


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


def model_version(model_dir: Path) -> str:
    """A short fingerprint of a model folder (its config and the size and time of its arrays)."""
    digest = hashlib.sha256()
    for name in ("config.json", "arrays.npz", "train.json"):
        path = model_dir / name
        if path.is_file():
            stat = path.stat()
            digest.update(name.encode())
            digest.update(
                path.read_bytes() if name.endswith(".json") else f"{stat.st_size}:{stat.st_mtime_ns}".encode()
            )
    return digest.hexdigest()[:12]


#: Model folders read once by `preload_model_dir` (the serving parent, before it forks its workers),
#: with the stamp of the files they were read from.
_PRELOADED: dict[Path, tuple[str, Recommender, Dataset]] = {}


def _folder_stamp(model_dir: Path) -> str:
    """The model's version and the size and time of its data set's files: what a preloaded read
    must still match (a retrain or a privacy deletion changes it)."""
    stamps = [model_version(model_dir)]
    for path in sorted((model_dir / "dataset").glob("*")):
        stat = path.stat()
        stamps.append(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}")
    return "|".join(stamps)


def preload_model_dir(model_dir: Path) -> tuple[Recommender, Dataset]:
    """Read a model folder once for this process and the processes forked from it: their first
    `read_model_dir` of the unchanged folder takes this read (its pages shared until written)
    instead of holding a copy of the model and the data set each."""
    model_dir = Path(model_dir).resolve()
    with folder_lock(model_dir, exclusive=False):
        stamp = _folder_stamp(model_dir)
        model, dataset = _read_model_files(model_dir)
    _PRELOADED[model_dir] = (stamp, model, dataset)
    return model, dataset


def read_model_dir(model_dir: Path) -> tuple[Recommender, Dataset]:
    try:
        with folder_lock(model_dir, exclusive=False):
            preloaded = _PRELOADED.pop(Path(model_dir).resolve(), None)
            if preloaded is not None and preloaded[0] == _folder_stamp(model_dir):
                return preloaded[1], preloaded[2]
            return _read_model_files(model_dir)
    except ShelfwiseError:
        raise
    except OSError as exc:  # a name too long, a folder not readable, a file gone meanwhile
        raise DataFormatError(f"{str(model_dir)[:200]}: cannot read the model folder ({exc.strerror}).") from None
    except Exception as exc:  # a damaged file: whatever its reader raised, the folder is not a model
        raise DataFormatError(f"{str(model_dir)[:200]}: not a readable model folder ({exc!r:.200}).") from None


def _read_model_files(model_dir: Path) -> tuple[Recommender, Dataset]:
    if not (model_dir / "config.json").is_file():
        raise DataFormatError(f"{model_dir} is not a trained model folder (no config.json); run `shelfwise train`.")
    if not (model_dir / "dataset" / "dataset.json").is_file():
        raise DataFormatError(f"{model_dir} has no dataset/ folder; train it with `shelfwise train`.")
    model = Recommender.load(model_dir)
    dataset = Dataset.load(model_dir / "dataset")
    if dataset.n_items != model.n_items_:
        raise DataFormatError(
            f"{model_dir}: the model knows {model.n_items_} items but dataset/ has {dataset.n_items}."
        )
    return model, dataset


@contextlib.contextmanager
def folder_lock(model_dir: Path, *, exclusive: bool) -> Iterator[None]:
    """A lock on a model folder across processes (workers and replicas may share one): shared to
    read it, exclusive to rewrite it. A folder this process may not write is read without one."""
    try:
        handle = open(model_dir / ".shelfwise.lock", "a+")  # noqa: SIM115 - closed below
    except OSError:
        if exclusive:
            raise
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def forget_in_model_dir(generation: Generation, user_id: str) -> dict[str, int]:
    """Erase the shopper from the served model (in memory) and from its folder: their training
    events and model state."""

    def locate(dataset: Dataset) -> int | None:
        try:
            return int(dataset.user_index(user_id))
        except UnknownIdError:
            return None

    removed = _erase_in_folder(generation, locate)
    if generation.user_ids is not None:
        known = np.flatnonzero(generation.user_ids.astype(str) == user_id)
        user = int(known[0]) if len(known) else None
    else:  # a generation made without its shoppers' ids: the folder's index
        user = locate(Dataset.load(generation.model_dir / "dataset"))
    if user is not None:
        _forget_in_memory(generation, user)
    return removed


def forget_model_user(generation: Generation, user: int, *, in_folder: bool) -> None:
    """Erase the model's shopper `user` (an index) from the served model, and from its folder where
    `in_folder` and the folder still holds them (a replica sharing the folder has erased them there)."""
    held = generation.user_ids
    if in_folder and held is not None:
        _erase_in_folder(
            generation,
            lambda dataset: (
                user if user < len(dataset.user_ids) and str(dataset.user_ids[user]) == str(held[user]) else None
            ),
        )
    _forget_in_memory(generation, user)


def _erase_in_folder(generation: Generation, locate: Callable[[Dataset], int | None]) -> dict[str, int]:
    """Under the folder's exclusive lock, re-read its data set and erase the shopper `locate` finds
    there (None: nobody), so a replica that shares the folder and erased someone else meanwhile keeps
    that erasure; the served version is the folder's afterwards."""
    model_dir = generation.model_dir
    removed = {"training_events": 0, "model_state": 0}
    with folder_lock(model_dir, exclusive=True):
        dataset = Dataset.load(model_dir / "dataset")
        user = locate(dataset)
        if user is not None:
            removed = _scrub(model_dir, dataset, user)
        generation.version = model_version(model_dir)
    return removed


def _forget_in_memory(generation: Generation, user: int) -> None:
    generation.model.forget_user(user)
    if generation.user_ids is not None and user < len(generation.user_ids):
        generation.user_ids[user] = f"(deleted {user})"
        generation._user_hashes = None


def _scrub(model_dir: Path, dataset: Dataset, user: int) -> dict[str, int]:
    """Rewrite the folder without the shopper `user`: the data set, and the model as it is on disk
    (not as this process holds it, which may lack another replica's erasures). Hold the lock."""
    interactions = dataset.interactions
    keep = interactions["user"].to_numpy() != user
    removed_events = int((~keep).sum())
    user_ids = dataset.user_ids.copy()
    user_ids[user] = f"(deleted {user})"
    scrubbed = Dataset(
        interactions.loc[keep].reset_index(drop=True),
        user_ids,
        dataset.items,
        name=dataset.name,
        event_weights=dataset.event_weights,
        meta=dataset.meta,
    )
    scrubbed.save(model_dir / "dataset")
    on_disk = Recommender.load(model_dir)
    on_disk.forget_user(user)
    on_disk.save(model_dir)
    return {"training_events": removed_events, "model_state": 1}


def map_by_quantile(cold_text: np.ndarray, reference_text: np.ndarray, reference_model: np.ndarray) -> np.ndarray:
    """Each cold item's text score, as its quantile among the reference items' text scores, read off
    the reference items' model scores at that quantile."""
    quantile = np.searchsorted(np.sort(reference_text), cold_text, side="right") / max(len(reference_text), 1)
    ordered = np.sort(reference_model)  # np.quantile's linear method, one sort for every quantile
    return np.interp(np.clip(quantile, 0.0, 1.0) * (len(ordered) - 1), np.arange(len(ordered)), ordered)
