"""`shelfwise finetune-encoder`: contrastive fine-tuning of the encoder on a shop's co-interactions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shelfwise.cli.app import app, console


@app.command("finetune-encoder")
def finetune_encoder(
    data: Annotated[str, typer.Option("--data", help="A data set folder (public layout or ingested).")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the fine-tuned model.")],
    format: Annotated[str | None, typer.Option("--format", help="Data set format (default: detected).")] = None,
    protocol: Annotated[
        str | None,
        typer.Option(
            "--protocol",
            help="p1 or p2: take pairs from that protocol's fitted data only, so the model can be evaluated under it.",
        ),
    ] = None,
    encoder: Annotated[str, typer.Option("--encoder", help="Model to start from.")] = "default",
    max_pairs: Annotated[int, typer.Option("--max-pairs", min=1)] = 4000,
    epochs: Annotated[int, typer.Option("--epochs", min=1)] = 1,
    batch_size: Annotated[int, typer.Option("--batch-size", min=2)] = 32,
    learning_rate: Annotated[float, typer.Option("--learning-rate", min=0.0)] = 3e-5,
    max_seconds: Annotated[float, typer.Option("--max-seconds", min=1.0, help="Wall-clock budget.")] = 300.0,
    seed: Annotated[int, typer.Option("--seed")] = 42,
) -> None:
    """Fine-tune the encoder so that items shoppers take together land close together."""
    from shelfwise.data.adapters import load_dataset
    from shelfwise.evaluation.protocols import make_splits
    from shelfwise.text.finetune import finetune_encoder as run

    dataset = load_dataset(data, format)
    if protocol:
        dataset = make_splits(dataset, protocol)["test"].train
    result = run(
        dataset,
        out,
        encoder=encoder,
        max_pairs=max_pairs,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        max_seconds=max_seconds,
        seed=seed,
        progress=True,
    )
    first, last = result.losses[0], sum(result.losses[-10:]) / len(result.losses[-10:])
    console.print(
        f"fine-tuned on {result.pairs:,} pairs in {result.steps} steps ({result.seconds:.0f} s); "
        f"loss {first:.3f} → {last:.3f}; saved to {result.path}"
    )
    console.print(f"use it with: --encoder {result.path}")
