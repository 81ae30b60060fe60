"""A model folder on disk: read (once per process where `preload_model_dir` ran, shared with the
workers forked after it), locked across processes, fingerprinted (`model_version`), and rewritten
without a shopper (a privacy deletion). A damaged folder is a `DataFormatError`."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

from shelfwise.data.dataset import Dataset
from shelfwise.errors import DataFormatError, ShelfwiseError
from shelfwise.models import Recommender


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


def erase_user(model_dir: Path, locate: Callable[[Dataset], int | None]) -> dict[str, int]:
    """Under the folder's exclusive lock, re-read its data set and erase the shopper `locate` finds
    there (None: nobody): their training events and model state. Re-reading keeps an erasure that a
    replica sharing the folder made meanwhile. Says what it removed."""
    removed = {"training_events": 0, "model_state": 0}
    with folder_lock(model_dir, exclusive=True):
        dataset = Dataset.load(model_dir / "dataset")
        user = locate(dataset)
        if user is not None:
            removed = _scrub(model_dir, dataset, user)
    return removed


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
