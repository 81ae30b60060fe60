"""`shelfwise evaluate`: models side by side under a protocol of PROTOCOLS.md."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from shelfwise.cli.app import app, console, err_console
from shelfwise.cli.options import (
    MODEL_NAMES,
    RayAddress,
    Workers,
    check_backend,
    parse_model_params,
    split_names,
)
from shelfwise.errors import ConfigError


def results_table(records: list[dict]) -> Table:
    """One row per record, one column per metric."""
    metric_names: list[str] = []
    for record in records:
        metric_names += [name for name in record["metrics"] if name not in metric_names]
    title = ", ".join(sorted({f"{r['dataset']} ({r['protocol']})" for r in records}))
    table = Table(title=title)
    table.add_column("model")
    for name in metric_names:
        table.add_column(name, justify="right", overflow="fold")
    table.add_column("users", justify="right")
    table.add_column("fit s", justify="right")
    for record in records:
        values = [record["metrics"].get(name) for name in metric_names]
        table.add_row(
            record["model"],
            *["–" if v is None else f"{v:.4f}" for v in values],
            str(record["users"]),
            f"{record['fit_seconds']:.1f}",
        )
    return table


def write_records(records: list[dict], output: Path) -> None:
    """The records as JSON (without their analysis), replacing `output` atomically."""
    output.parent.mkdir(parents=True, exist_ok=True)
    plain = [{key: value for key, value in r.items() if key != "analysis"} for r in records]
    staging = output.with_name(f".{output.name}.tmp")
    staging.write_text(json.dumps(plain, indent=2))
    os.replace(staging, output)


def _run_keeping_records(
    run: Callable[..., list[dict]], title: str, steps: int, output: Path | None, quiet: bool
) -> list[dict]:
    """`run(on_event=, on_record=)` under a progress bar, each finished record written to `output`
    at once; Ctrl-C prints and keeps the finished ones and exits 130."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    finished: list[dict] = []
    with Progress(*columns, console=err_console, disable=quiet, transient=True) as progress:
        task = progress.add_task(title, total=steps)

        def note(message: str) -> None:
            progress.advance(task)
            if not quiet:
                progress.console.print(message, highlight=False, markup=False)

        def keep(record: dict) -> None:
            finished.append(record)
            if output is not None:
                write_records(finished, output)

        try:
            return run(on_event=note, on_record=keep)
        except KeyboardInterrupt:
            progress.stop()
    if finished:
        console.print(results_table(finished))
    kept = f"; {len(finished)} finished model(s) kept in {output}" if output is not None and finished else ""
    err_console.print(f"interrupted{kept}", highlight=False)
    raise typer.Exit(130)


@app.command()
def evaluate(
    data: Annotated[
        str,
        typer.Option(
            "--data",
            help="A data set folder (e.g. ../shared/data/online-retail-uci"
            ", or its bare name) or a folder from `shelfwise ingest`.",
        ),
    ],
    protocol: Annotated[
        str,
        typer.Option(
            "--protocol",
            help="p1 (leave-last-out), p2 (temporal) or p3 (20 sampled candidates: for comparison with "
            "published tables only; tuned on p1's validation targets).",
        ),
    ],
    models: Annotated[
        str, typer.Option("--models", help=f"Comma-separated, any of: {MODEL_NAMES}.")
    ] = "popularity,itemknn,als,bpr,ease,mf",
    format: Annotated[
        str | None,
        typer.Option(
            "--format", help="online-retail, amazon2018, movielens-100k, movielens or shelfwise (default: detected)."
        ),
    ] = None,
    output: Annotated[Path | None, typer.Option("--output", help="Write the records as JSON here.")] = None,
    tune: Annotated[
        bool, typer.Option("--tune/--no-tune", help="Search each model's grid on the tuning split first.")
    ] = True,
    cutoff: Annotated[
        str | None, typer.Option("--cutoff", help="p2: test cutoff time (default: the protocol's).")
    ] = None,
    tune_cutoff: Annotated[str | None, typer.Option("--tune-cutoff", help="p2: tuning cutoff time.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress messages.")] = False,
    report: Annotated[
        Path | None, typer.Option("--report", help="Write a self-contained HTML report with plots here.")
    ] = None,
    backend: Annotated[
        str, typer.Option("--backend", help="local, or ray: score the evaluated users on Ray workers.")
    ] = "local",
    workers: Workers = 2,
    ray_address: RayAddress = None,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            help="MODEL.NAME=VALUE, repeatable: fixes a hyperparameter in the tuning and the final fit "
            "(`shelfwise train --model MODEL --help-params` lists them).",
        ),
    ] = None,
) -> None:
    """Fit, tune and score models under protocol P1, P2 or P3; print a table and write JSON records.
    Each model's record is written to --output as soon as it is done; Ctrl-C keeps those."""
    from shelfwise.data.adapters import load_dataset
    from shelfwise.evaluation.runner import evaluate as run_evaluate
    from shelfwise.models import create_model, get_model_class

    names = split_names(models, "--models")
    for name in names:
        get_model_class(name)
    fixed = parse_model_params(param, names)
    for name, values in fixed.items():
        create_model(name, **values)  # unknown names and bad values fail before any work
    recommend = None
    if check_backend(backend) == "ray":
        from shelfwise.distributed import connect, ray_recommend

        connect(ray_address)
        recommend = ray_recommend(workers=workers, address=ray_address)
    if protocol.lower() == "p3" and report is not None:
        raise ConfigError("--report: p3 has no report (its figures are for comparison tables only); use p1 or p2")
    dataset = load_dataset(data, format)
    options = {}
    if protocol.lower() == "p2":
        options = {"cutoff": cutoff, "tune_cutoff": tune_cutoff}
    elif cutoff or tune_cutoff:
        err_console.print("--cutoff and --tune-cutoff apply to p2 only; ignored.")

    steps = sum(1 + (len(get_model_class(name).tuning_grid) if tune else 0) for name in names)
    records = _run_keeping_records(
        functools.partial(
            run_evaluate,
            dataset,
            protocol,
            names,
            tuned=tune,
            split_options=options,
            include_analysis=report is not None,
            recommend=recommend,
            base_params=fixed,
        ),
        f"evaluating on {dataset.name}",
        steps,
        output,
        quiet,
    )
    console.print(results_table(records))
    if output is not None:
        console.print(f"wrote {output}")
    if report is not None:
        from shelfwise.evaluation.report import write_report

        meta = f"shelfwise evaluate --data {data} --protocol {protocol} --models {models}"
        write_report(records, report, title=f"shelfwise evaluation: {dataset.name}", meta=meta)
        console.print(f"wrote {report}")
