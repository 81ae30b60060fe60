"""`shelfwise train` (a model folder from a data set) and `shelfwise recommend` (a shopper's list)."""

from __future__ import annotations

import json
import resource
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from shelfwise.cli.app import app, console
from shelfwise.cli.options import RayAddress, Workers, check_backend, parse_params
from shelfwise.evaluation.report import write_training_report
from shelfwise.ranking import MAX_K


@app.command()
def train(
    data: Annotated[
        str | None, typer.Option("--data", help="A data set folder (public layout or ingested). Required.")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Folder to write the trained model to. Required.")] = None,
    model: Annotated[str, typer.Option("--model", help="Model name (see `shelfwise evaluate --help`).")] = "ease",
    format: Annotated[str | None, typer.Option("--format", help="Data set format (default: detected).")] = None,
    param: Annotated[list[str] | None, typer.Option("--param", help="Hyperparameter NAME=VALUE (repeatable).")] = None,
    backend: Annotated[
        str, typer.Option("--backend", help="local, or ray: train the sequential model with Ray Train (DDP).")
    ] = "local",
    workers: Workers = 2,
    ray_address: RayAddress = None,
    build_artifacts: Annotated[
        bool,
        typer.Option(
            "--build/--no-build", help="Write the serving artifacts (see `shelfwise build`) into the folder too."
        ),
    ] = True,
    help_params: Annotated[
        bool,
        typer.Option("--help-params", help="List the model's parameters (meaning, default, allowed values) and stop."),
    ] = False,
) -> None:
    """Fit a model on all of a data set and save it, with the catalog and histories, as a folder
    (with its serving artifacts: `serve` maps them and starts in seconds)."""
    from shelfwise.data.adapters import load_dataset
    from shelfwise.errors import ConfigError
    from shelfwise.models import create_model

    if help_params:
        print_params(model)
        return
    if data is None or out is None:
        raise ConfigError("train needs --data (a data set folder) and --out (the folder to write the model to).")
    params = parse_params(param)
    recommender = create_model(model, **params)
    if check_backend(backend) == "ray":
        from shelfwise.models.sequential import SequentialRecommender

        if not isinstance(recommender, SequentialRecommender):
            raise ConfigError(f"--backend ray trains the sequential model; {model!r} fits on one machine.")
        from shelfwise.distributed import connect, ray_train_runner

        connect(ray_address)
        recommender.train_runner = ray_train_runner(workers=workers, address=ray_address)
    dataset = load_dataset(data, format)
    console.print(f"training {model} on {dataset}")
    started = time.perf_counter()
    recommender.fit(dataset, progress=True)
    seconds = time.perf_counter() - started
    recommender.save(out)
    dataset.save(out / "dataset")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    summary = {
        "model": model,
        "data": str(data),
        "fit_seconds": round(seconds, 2),
        "peak_memory_mb": round(peak_mb),
        "params": recommender.get_params(),
        "users": dataset.n_users,
        "items": dataset.n_items,
        "training": getattr(recommender, "training_log_", {}) or {},
        "backend": backend if backend == "local" else f"{backend} ({workers} workers)",
    }
    (out / "train.json").write_text(json.dumps(summary, indent=2))
    write_training_report(summary, out / "train.html")
    _print_summary(summary)
    console.print(f"fitted in {seconds:.1f} s (peak memory {peak_mb:.0f} MB); saved to {out}")
    console.print(f"summary with the training curve: {out / 'train.html'}")
    if build_artifacts:
        build(out)


@app.command()
def build(
    model: Annotated[Path, typer.Argument(help="A folder written by `shelfwise train`.")],
    index: Annotated[
        str, typer.Option("--index", help="Vector indexes: auto (HNSW from 50,000 items), exact or hnsw.")
    ] = "auto",
) -> None:
    """Write a model folder's serving artifacts into its serving/ folder: item text vectors, the
    vector and lexical indexes, and item fingerprints. `serve` maps them instead of rebuilding them on
    every start (use the same --index there)."""
    from shelfwise.engine.build import write_serving_artifacts

    console.print(f"building the serving artifacts of {model} …")
    done = write_serving_artifacts(model, index=index)
    console.print(
        f"wrote {done['folder']} in {done['seconds']} s: {done['items']:,} items, text index {done['index']}, "
        f"model index {done['model_index'] or 'none'} ({done['megabytes']} MB)"
    )


def print_params(model: str) -> None:
    """A model's parameters as its class declares them (`Recommender.params`)."""
    from shelfwise.models.base import get_model_class

    model_cls = get_model_class(model)
    if not model_cls.params:
        console.print(f"{model} has no parameters.")
        return
    table = Table(title=f"{model}: parameters (--param NAME=VALUE)", title_justify="left", show_lines=True)
    table.add_column("name", no_wrap=True)
    table.add_column("default", max_width=24, overflow="fold")
    table.add_column("allowed", no_wrap=True)
    table.add_column("meaning", ratio=1, min_width=30)
    for param in model_cls.describe_params():
        table.add_row(param["name"], json.dumps(param["default"]), param["allowed"], param["help"])
    console.print(table)


_SPARKS = "▁▂▃▄▅▆▇█"


def _sparkline(values: list[float]) -> str:
    low, high = min(values), max(values)
    span = high - low or 1.0
    return "".join(_SPARKS[round((v - low) / span * (len(_SPARKS) - 1))] for v in values)


def _print_summary(summary: dict) -> None:
    """Per-epoch figures of the phases a model trained in (nothing for closed-form models)."""
    log = summary["training"]
    metric = log.get("metric")
    for phase in log.get("phases", []):
        rows = phase.get("epochs") or []
        if not rows:
            continue
        table = Table(title=f"{summary['model']}: {phase['name']} phase", title_justify="left")
        for column in ("epoch", "loss", *([metric] if metric and metric in rows[0] else []), "s"):
            table.add_column(column, justify="right")
        for row in rows:
            cells = [str(row["epoch"]), f"{row['loss']:.4f}"]
            if metric and metric in row:
                best = " ◀ best" if row["epoch"] == log.get("best_epoch") else ""
                cells.append(f"{row[metric]:.4f}{best}")
            elif metric and metric in rows[0]:  # an epoch the time budget cut: not judged
                cells.append(f"cut at {row.get('share of the epoch', 0.0):.0%}")
            table.add_row(*cells, f"{row.get('seconds', 0.0):.1f}")
        console.print(table)
        console.print(f"loss {_sparkline([r['loss'] for r in rows])}")
    if log.get("best_epoch"):
        console.print(f"best epoch: {log['best_epoch']}")
    if log.get("final_phase"):
        console.print(f"final phase {log['final_phase']}")


@app.command()
def recommend(
    user_id: Annotated[str, typer.Argument(help="The shopper's id as in the training data.")],
    model: Annotated[Path, typer.Option("--model", help="A folder written by `shelfwise train`.")],
    k: Annotated[int, typer.Option("-k", "--k", min=1, max=MAX_K, help="How many items.")] = 10,
    in_stock: Annotated[bool, typer.Option("--in-stock/--any-stock", help="Only items in stock.")] = True,
) -> None:
    """Print a shopper's top-k recommendations from a trained model folder."""
    from shelfwise.data.dataset import Dataset
    from shelfwise.models import Recommender

    recommender = Recommender.load(model)
    dataset = Dataset.load(model / "dataset")
    user = int(dataset.user_index(user_id))
    candidates = dataset.items["in_stock"].to_numpy() if in_stock else None
    ids, scores = recommender.recommend(user, k, candidates=candidates)
    items = dataset.items
    table = Table(title=f"top {k} for shopper {user_id} ({recommender.name})", title_justify="left")
    for column in ("#", "item", "title", "category", "price", "score"):
        table.add_column(column, justify="right" if column in {"#", "price", "score"} else "left")
    for rank, (item, score) in enumerate(zip(ids, scores, strict=True), start=1):
        if item < 0:
            continue
        row = items.iloc[item]
        price = "" if row["price"] != row["price"] else f"{row['price']:.2f}"
        table.add_row(str(rank), row["item_id"], row["title"] or "", row["category"] or "", price, f"{score:.4f}")
    console.print(table)
