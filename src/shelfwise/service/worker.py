"""One worker process of `shelfwise serve --workers N`: uvicorn starts N of these on one port.

Each worker builds its own engine over the shared store and model folder from the environment the
parent set (`SERVE_ENV`), follows the store's change feed (so a catalog write, a deletion or a reload
made through one worker reaches the others), and serves with the key the parent chose.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator

from fastapi import FastAPI

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


def make_app() -> FastAPI:
    """The app of one worker (a uvicorn factory)."""
    from shelfwise.engine import Engine
    from shelfwise.engine.replication import ChangeFollower
    from shelfwise.service import create_app
    from shelfwise.settings import load_settings

    logging.getLogger("shelfwise").setLevel(logging.INFO)
    settings = load_settings()
    engine = Engine(
        os.environ[SERVE_ENV["model"]],
        os.environ.get(SERVE_ENV["store"]) or settings.store or None,
        index=os.environ.get(SERVE_ENV["index"], "auto"),
    )
    one_thread_per_request()
    web = create_app(engine, settings)
    follower = ChangeFollower(engine)
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
