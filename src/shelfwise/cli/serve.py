"""`shelfwise serve`: the HTTP service over a trained model folder."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from shelfwise.cli.app import app, console
from shelfwise.cli.options import STORE_HELP


@app.command()
def serve(
    model: Annotated[Path, typer.Option("--model", help="A folder written by `shelfwise train`.")],
    store: Annotated[str | None, typer.Option("--store", help=STORE_HELP)] = None,
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to listen on.")] = 8000,
    index: Annotated[
        str, typer.Option("--index", help="Vector indexes: auto (HNSW from 50,000 items), exact or hnsw.")
    ] = "auto",
    log_level: Annotated[str, typer.Option("--log-level", help="uvicorn log level.")] = "warning",
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=1,
            max=64,
            help="Worker processes on the one port; each loads the model and follows the store's change feed.",
        ),
    ] = 1,
) -> None:
    """Serve recommendations over HTTP (OpenAPI docs at /docs). Send SIGHUP to reload the model folder
    (one worker); POST /v1/admin/reload reloads it in every worker and replica."""
    import uvicorn

    from shelfwise.service.auth import check_key
    from shelfwise.service.worker import assemble
    from shelfwise.settings import load_settings

    logging.getLogger("shelfwise").setLevel(logging.INFO)
    settings = load_settings()
    key = check_key(settings.api_key, settings.environment)  # a weak production key stops us before any loading
    if workers > 1:
        if not settings.api_key:
            console.print(f"no SHELFWISE_API_KEY set: writes need this generated key: {key}")
        _serve_workers(model, store or settings.store or None, host, port, index, log_level, workers, key)
        return
    console.print(f"loading {model} …")
    web = assemble(model, store or settings.store or None, index, settings)
    engine = web.state.engine
    stats = engine.stats()
    console.print(
        f"serving {stats['model']} (version {stats['model_version']}) on http://{host}:{port} "
        f"with {stats['items']} items; store {stats['store']}"
    )
    if not settings.api_key:
        console.print(f"no SHELFWISE_API_KEY set: writes need this generated key: {web.state.api_key}")

    def _reload(*_args: object) -> None:
        def work() -> None:
            try:
                version = engine.reload()
                web.state.metrics.set_model(engine.model.name, version)
                web.state.metrics.reloads.inc()
                console.print(f"reloaded {model}: version {version}")
            except Exception as exc:  # keep serving the old model
                console.print(f"[red]reload failed, still serving the old model:[/] {exc}")

        threading.Thread(target=work, name="shelfwise-reload", daemon=True).start()

    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, _reload)
    uvicorn.run(web, host=host, port=port, log_level=log_level, access_log=False)


def _serve_workers(
    model: Path, store: str | None, host: str, port: int, index: str, log_level: str, workers: int, key: str
) -> None:
    """`workers` processes on one port (uvicorn's supervisor restarts one that dies), forked from this
    one once it has read the model folder and loaded the encoder, which they then share. The store is
    filled once here, before the workers start, so they do not all fill an empty store at once."""
    import os

    import uvicorn

    from shelfwise.engine.store_fill import fill_store
    from shelfwise.service.worker import SERVE_ENV, fork_workers, preload
    from shelfwise.settings import load_settings
    from shelfwise.store import default_store_url, open_store

    url = store or default_store_url()
    dataset = preload(model, load_settings().encoder)  # read and loaded once here; the workers share it
    opened = open_store(url)
    try:
        fill_store(opened, dataset)
    finally:
        opened.close()
    os.environ.update({SERVE_ENV["model"]: str(model), SERVE_ENV["store"]: url, SERVE_ENV["index"]: index})
    os.environ["SHELFWISE_API_KEY"] = key  # one key for every worker (generated here when none is set)
    fork_workers()
    console.print(f"serving {model} with {workers} workers on http://{host}:{port}")
    uvicorn.run(
        "shelfwise.service.worker:make_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        access_log=False,
    )


@app.command()
def load(
    model: Annotated[Path, typer.Option("--model", help="A folder written by `shelfwise train`.")],
    store: Annotated[
        str | None,
        typer.Option("--store", help=STORE_HELP),
    ] = None,
) -> None:
    """Fill an empty store with a model folder's catalog and training histories, as its own step:
    resumable (run it again after an interruption and it goes on from the last committed chunk), with
    the events' indexes built once at the end. `serve` does the same on an empty store."""
    from rich.progress import Progress

    from shelfwise.data.dataset import Dataset
    from shelfwise.engine.store_fill import fill_store
    from shelfwise.settings import load_settings
    from shelfwise.store import open_store

    dataset = Dataset.load(model / "dataset")
    opened = open_store(store or load_settings().store or None)
    try:
        with Progress(console=console) as bar:
            task = bar.add_task("events", total=dataset.n_interactions)
            items = fill_store(opened, dataset, progress=lambda done: bar.update(task, completed=done))
        console.print(f"{opened.url}: {len(items):,} catalog items and {opened.event_count():,} events in the store")
    finally:
        opened.close()
