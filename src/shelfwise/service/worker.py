"""One worker process of `shelfwise serve --workers N`: uvicorn starts N of these on one port.

The parent loads what every worker needs and does not change (the libraries, the model folder's
model and data set, the text encoder's weights) once (`preload`, `model_folder.preload_model_dir`),
then forks the workers, so they share those pages instead of each holding a copy; the model's large
arrays and the serving artifacts are memory-mapped and shared through the page cache.
Each worker then builds its own engine over the shared store and model folder from the environment
the parent set (`SERVE_ENV`), follows the store's change feed (so a catalog write, a deletion or a
reload made through one worker reaches the others), and serves with the key the parent chose.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import multiprocessing
import os
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI

if TYPE_CHECKING:
    from shelfwise.data.dataset import Dataset
    from shelfwise.engine import Engine
    from shelfwise.settings import Settings

#: What the parent passes to its workers.
SERVE_ENV = {
    "model": "SHELFWISE_SERVE_MODEL",
    "store": "SHELFWISE_SERVE_STORE",
    "index": "SHELFWISE_SERVE_INDEX",
}


def one_thread_per_request() -> None:
    """Requests run side by side in the server's thread pool, so each one's numpy, faiss and torch work
    stays on one thread: BLAS and OpenMP pools that spin-wait between small calls would otherwise
    burn the cores the other requests need."""
    import faiss
    import torch
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)
    faiss.omp_set_num_threads(1)
    torch.set_num_threads(1)


def preload(model_dir: Path, encoder: str) -> Dataset:
    """In the parent, before the workers are forked: read the model folder, import the serving code
    and load the text encoder (`encoder`, a spec) once, single-threaded (a thread pool started before
    a fork does not survive it), then move every object made so far out of the garbage collector's
    sight (`gc.freeze`), so the workers' collections do not write to, and so copy, the pages they
    share with the parent. Returns the model's data set (to fill the store with)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # the tokenizer's pool is not fork-safe
    one_thread_per_request()
    import shelfwise.engine
    import shelfwise.service  # noqa: F401  (imported here to be shared)
    from shelfwise.engine.model_folder import preload_model_dir
    from shelfwise.text import create_encoder
    from shelfwise.text.encoder import SentenceTransformerEncoder

    _, dataset = preload_model_dir(model_dir)
    text = create_encoder(encoder)
    if isinstance(text, SentenceTransformerEncoder):
        text.preload()
    gc.collect()
    gc.freeze()
    return dataset


def settle_heap(engine: Engine) -> None:
    """Once the engine is built: collect, then move every object made so far (the catalog's records,
    the indexes' maps: hundreds of thousands of long-lived objects) out of the cyclic garbage
    collector's sight; again once the engine has loaded its text encoder in the background. A full
    collection walked them all: at 100,000 items it stopped a forked worker for 0.13 s and a single
    serving process (610,000 objects) for 0.29 s; it now walks what requests made."""
    gc.collect()
    gc.freeze()

    def after_encoder() -> None:
        if engine.wait_until_text_ready():
            gc.collect()
            gc.freeze()

    threading.Thread(target=after_encoder, name="shelfwise-settle-heap", daemon=True).start()


def fork_workers() -> None:
    """Make uvicorn's supervisor fork its workers from this process instead of spawning fresh
    interpreters (which would each import and load everything again). uvicorn has no option for
    it; its workers are made by the context `uvicorn._subprocess.spawn` names, so that is replaced
    (checked by tests/test_replicas.py: the workers share memory with their parent)."""
    import uvicorn._subprocess

    uvicorn._subprocess.spawn = multiprocessing.get_context("fork")  # type: ignore[assignment]


def make_app() -> FastAPI:
    """The app of one worker (a uvicorn factory): `assemble` with what `shelfwise serve` put in the
    environment."""
    from shelfwise.settings import load_settings

    logging.getLogger("shelfwise").setLevel(logging.INFO)
    settings = load_settings()
    store = os.environ.get(SERVE_ENV["store"]) or settings.store or None
    return assemble(os.environ[SERVE_ENV["model"]], store, os.environ.get(SERVE_ENV["index"], "auto"), settings)


def assemble(model_dir: str | Path, store: str | None, index: str, settings: Settings) -> FastAPI:
    """The app `shelfwise serve` runs, in its one process or in each of its workers: the engine over
    `model_dir` and `store`, the app over it, and, for the app's lifespan, the follower of the
    change feed (other replicas' catalog writes, deletions and reloads); the engine closes with it."""
    from shelfwise.engine import Engine
    from shelfwise.engine.replication import ChangeFollower
    from shelfwise.service import create_app

    engine = Engine(model_dir, store, index=index)  # start-up uses every core
    one_thread_per_request()
    web = create_app(engine, settings)
    follower = ChangeFollower(engine)
    settle_heap(engine)
    inner = web.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        follower.start()
        try:
            async with inner(app):
                yield
        finally:
            follower.stop()
            engine.close()

    web.router.lifespan_context = lifespan
    return web
