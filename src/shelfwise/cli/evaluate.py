"""`shelfwise evaluate`: models side by side under a protocol of PROTOCOLS.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from shelfwise.cli import app, console, err_console
from shelfwise.cli.options import MODEL_NAMES, RayAddress, Workers, check_backend, split_names
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
) -> None:
    """Fit, tune and score models under protocol P1, P2 or P3; print a table and write JSON records."""
    from shelfwise.data.adapters import load_dataset
    from shelfwise.evaluation.runner import evaluate as run_evaluate
    from shelfwise.models import get_model_class

    names = split_names(models, "--models")
    for name in names:
        get_model_class(name)
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
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        disable=quiet,
        transient=True,
    ) as progress:
        task = progress.add_task(f"evaluating on {dataset.name}", total=steps)

        def note(message: str) -> None:
            progress.advance(task)
            if not quiet:
                progress.console.print(message, highlight=False, markup=False)

        records = run_evaluate(
            dataset,
            protocol,
            names,
            tuned=tune,
            split_options=options,
            on_event=note,
            include_analysis=report is not None,
            recommend=recommend,
        )
    console.print(results_table(records))
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        plain = [{key: value for key, value in r.items() if key != "analysis"} for r in records]
        output.write_text(json.dumps(plain, indent=2))
        console.print(f"wrote {output}")
    if report is not None:
        from shelfwise.evaluation.report import write_report

        meta = f"shelfwise evaluate --data {data} --protocol {protocol} --models {models}"
        write_report(records, report, title=f"shelfwise evaluation: {dataset.name}", meta=meta)
        console.print(f"wrote {report}")
