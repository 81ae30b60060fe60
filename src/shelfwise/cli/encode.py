"""`shelfwise encode`: a catalog's item texts into the embedding cache."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from shelfwise.cli.app import app, console
from shelfwise.cli.options import RayAddress, Workers


@app.command()
def encode(
    data: Annotated[
        str,
        typer.Option(
            "--data", help="A data set folder (public layout or ingested) or a catalog file (CSV, TSV, Parquet, JSONL)."
        ),
    ],
    format: Annotated[
        str | None, typer.Option("--format", help="Data set format, or catalog file format when --data is a file.")
    ] = None,
    encoder: Annotated[
        str | None,
        typer.Option(
            "--encoder",
            help="'default' (all-MiniLM-L6-v2), a model folder, or openai:URL#MODEL "
            "(default: the encoder setting, SHELFWISE_ENCODER).",
        ),
    ] = None,
    template: Annotated[
        str | None,
        typer.Option("--template", help="Item text template over {title}, {brand}, {category}, {description}, {tags}."),
    ] = None,
    cache_dir: Annotated[
        Path | None,
        typer.Option("--cache-dir", help="Embedding cache folder (default: ~/.shelfwise/cache/embeddings)."),
    ] = None,
    backend: Annotated[
        str,
        typer.Option(
            "--backend", help="torch, torch-int8 (this process) or ray (Ray Data encoder actors, torch each)."
        ),
    ] = "torch",
    workers: Workers = 2,
    ray_address: RayAddress = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 64,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object: items, encoded, from_cache, encode_seconds.")
    ] = False,
) -> None:
    """Encode every item's text; only items whose text is not in the cache reach the model."""
    from shelfwise.data.adapters import load_dataset
    from shelfwise.data.readers import read_items
    from shelfwise.settings import load_settings
    from shelfwise.text import ItemTextTemplate, create_encoder, encode_items

    path = Path(data)
    if path.is_file():
        result = read_items(path, format=format)
        result.report.raise_if_errors()
        items = result.frame
    else:
        items = load_dataset(data, format).items
    encoder = encoder or load_settings().encoder
    on_ray = backend == "ray"
    model_backend = "torch" if on_ray else backend
    options = {} if encoder.startswith("openai:") else {"backend": model_backend, "batch_size": batch_size}
    text_encoder = create_encoder(encoder, **options)
    item_text = ItemTextTemplate(template) if template else ItemTextTemplate()
    stream = None
    if on_ray:
        from shelfwise.distributed import connect, ray_stream

        connect(ray_address)
        stream = ray_stream(encoder, workers=workers, address=ray_address, options=options)
    encoded = encode_items(
        items, text_encoder, template=item_text, cache_dir=cache_dir, progress=not as_json, stream=stream
    )
    summary = encoded.summary()
    if as_json:
        print(json.dumps(summary))
    else:
        console.print(
            f"{summary['items']:,} items: {summary['encoded']:,} encoded, {summary['from_cache']:,} "
            f"from the cache, in {summary['encode_seconds']:.2f} s ({text_encoder.name})"
        )
