"""The typer app every command registers on, and the consoles they print to."""

from __future__ import annotations

import typer
from rich.console import Console

app = typer.Typer(
    name="shelfwise",
    help="shelfwise: recommendations for online shops.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)
