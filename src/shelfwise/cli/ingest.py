"""`shelfwise ingest`: validated, cleaned data set written to a folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from shelfwise.cli.app import app, console, err_console
from shelfwise.cli.options import parse_pairs, parse_weights
from shelfwise.errors import ValidationError


@app.command()
def ingest(
    events: Annotated[Path, typer.Option("--events", help="Event log: CSV, TSV, Parquet or JSONL (.gz ok).")],
    out: Annotated[Path, typer.Option("--out", help="Folder to write the data set to.")],
    items: Annotated[Path | None, typer.Option("--items", help="Catalog file (optional).")] = None,
    format: Annotated[
        str | None,
        typer.Option("--format", help="Format of --events: csv, tsv, parquet, jsonl (default: from the file name)."),
    ] = None,
    items_format: Annotated[str | None, typer.Option("--items-format", help="Format of --items.")] = None,
    map_: Annotated[
        list[str] | None,
        typer.Option("--map", help="Event column mapping FIELD=COLUMN, e.g. user_id=customer (repeatable)."),
    ] = None,
    item_map: Annotated[
        list[str] | None, typer.Option("--item-map", help="Catalog column mapping FIELD=COLUMN (repeatable).")
    ] = None,
    event_type: Annotated[
        str, typer.Option("--event-type", help="Event type for a log without an event_type column.")
    ] = "purchase",
    event_weight: Annotated[
        list[str] | None, typer.Option("--event-weight", help="TYPE=WEIGHT, e.g. view=0.5 (repeatable).")
    ] = None,
    skip_invalid: Annotated[
        bool,
        typer.Option(
            "--skip-invalid", help="Load the good rows and write the bad ones with their reasons to a quarantine file."
        ),
    ] = False,
    quarantine: Annotated[
        Path | None, typer.Option("--quarantine", help="Quarantine file (default OUT.quarantine.jsonl).")
    ] = None,
    keep_duplicates: Annotated[
        bool,
        typer.Option(
            "--keep-duplicates",
            help="Keep rows identical in every column, and order lines of one time apart instead of summed.",
        ),
    ] = False,
    returns: Annotated[
        str,
        typer.Option(
            "--returns",
            help="A negative purchase quantity or a return row: 'net' takes it back from the shopper's "
            "purchases of the item; 'reject' refuses the row.",
        ),
    ] = "net",
    min_user_items: Annotated[
        int, typer.Option("--min-user-items", min=1, help="k-core: keep users with at least this many items.")
    ] = 1,
    min_item_users: Annotated[
        int, typer.Option("--min-item-users", min=1, help="k-core: keep items with at least this many users.")
    ] = 1,
    append: Annotated[
        bool, typer.Option("--append", help="Add to the data set already in OUT instead of replacing it.")
    ] = False,
) -> None:
    """Validate, clean and save an event log (and catalog) as a data set folder."""
    from shelfwise.data.ingest import ingest as run_ingest

    try:
        result = run_ingest(
            events,
            out,
            items_path=items,
            format=format,
            items_format=items_format,
            columns=parse_pairs(map_, "--map"),
            item_columns=parse_pairs(item_map, "--item-map"),
            default_event_type=event_type,
            event_weights=parse_weights(event_weight),
            skip_invalid=skip_invalid,
            quarantine=quarantine,
            drop_duplicates=not keep_duplicates,
            min_user_items=min_user_items,
            min_item_users=min_item_users,
            append=append,
            returns=returns,
        )
    except ValidationError as exc:
        err_console.print(str(exc), highlight=False, markup=False, soft_wrap=True)
        err_console.print(f"Nothing was written to {out}.", highlight=False)
        raise typer.Exit(1) from None
    table = Table(title=f"ingested into {out}", show_header=False)
    for key, value in result.counts.items():
        table.add_row(key.replace("_", " "), f"{value:,}")
    console.print(table)
    if result.quarantine is not None:
        err_console.print(
            f"{result.report.rows_rejected} rejected row(s) written to {result.quarantine}:", highlight=False
        )
        err_console.print(
            result.report.summary(limit=10, quarantined=True), highlight=False, markup=False, soft_wrap=True
        )
