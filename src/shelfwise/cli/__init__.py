"""The `shelfwise` command line (typer)."""

from __future__ import annotations

import logging
import sys

import typer

from shelfwise.cli.app import app, err_console
from shelfwise.errors import ShelfwiseError


def _register() -> None:
    from shelfwise.cli import demo, encode, evaluate, finetune, ingest, serve, shoppers, train  # noqa: F401  (adds commands)


def main(argv: list[str] | None = None) -> int:
    """Entry point: runs the app and turns shelfwise errors into a message and exit code 2."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    _register()
    try:
        result = app(args=argv, standalone_mode=False)
    except ShelfwiseError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True, soft_wrap=True)
        return 2
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        err_console.print("aborted")
        return 1
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            return exc.exit_code
        raise
    return result if isinstance(result, int) else 0


def run() -> None:  # pragma: no cover - console script
    sys.exit(main())
