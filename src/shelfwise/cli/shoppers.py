"""`shelfwise profile`, `shelfwise search` and `shelfwise segment`: the engine's shopper understanding
from the command line, over a trained model folder and the store `serve` uses."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from shelfwise.cli.app import app, console
from shelfwise.cli.options import STORE_HELP
from shelfwise.ranking import MAX_K

ModelOption = Annotated[Path, typer.Option("--model", help="A folder written by `shelfwise train`.")]
StoreOption = Annotated[str | None, typer.Option("--store", help=STORE_HELP)]


def _engine(model: Path, store: str | None):
    from shelfwise.engine import Engine
    from shelfwise.settings import load_settings

    return Engine(model, store or load_settings().store or None)


@app.command()
def profile(
    user_id: Annotated[str, typer.Argument(help="The shopper's id.")],
    model: ModelOption,
    store: StoreOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the profile as JSON.")] = False,
) -> None:
    """A shopper's profile: interests, categories, brands, price band, activity and current intent."""
    engine = _engine(model, store)
    try:
        found = engine.profile(user_id)
    finally:
        engine.close()
    if as_json:
        console.print_json(json.dumps(found))
        return
    activity = found["activity"]
    seen = f"{activity['first_seen']} – {activity['last_seen']}"
    console.print(f"[bold]{user_id}[/]: {activity['events']} events, {seen}")
    console.print("  " + ", ".join(f"{count} {kind}" for kind, count in activity["by_type"].items()))
    if found["segment"]:
        console.print(f"  segment {found['segment']['segment_id']}: {found['segment']['name']}")
    band = found["price_band"]
    if band:
        spread = f"{band['low']:.2f} – {band['high']:.2f}, median {band['median']:.2f}"
        console.print(f"  price band: {band['level']} ({spread})")
    console.print("  interests: " + ", ".join(f"{k['term']} ({k['weight']:.2f})" for k in found["keywords"]))
    for title, rows in (("categories", found["categories"]), ("brands", found["brands"])):
        console.print(f"  {title}: " + ", ".join(f"{r['name']} {r['share']:.0%}" for r in rows))
    intent = found["recent_intent"]
    console.print(f"  this session ({intent['events']} events): " + "; ".join(i["title"] for i in intent["items"]))


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="The words to look for.")],
    model: ModelOption,
    store: StoreOption = None,
    user: Annotated[str | None, typer.Option("--user", help="Personalise for this shopper.")] = None,
    k: Annotated[int, typer.Option("-k", "--k", min=1, max=MAX_K, help="How many items.")] = 10,
    personal_weight: Annotated[
        float, typer.Option("--personal-weight", min=0.0, max=1.0, help="The shopper's weight (with --user).")
    ] = 0.2,
) -> None:
    """Hybrid (BM25 + language model) search over the catalog, personalised with --user."""
    engine = _engine(model, store)
    try:
        hits = engine.search(query, k, user_id=user, personal_weight=personal_weight)
    finally:
        engine.close()
    table = Table(title=f"{query!r}" + (f" for {user}" if user else ""), title_justify="left")
    for column in ("#", "item", "title", "category", "price", "score"):
        table.add_column(column, justify="right" if column in {"#", "price", "score"} else "left")
    for rank, hit in enumerate(hits, start=1):
        price = "" if hit.item.price is None else f"{hit.item.price:.2f}"
        table.add_row(str(rank), hit.item_id, hit.item.title, hit.item.category, price, f"{hit.score:.3f}")
    console.print(table if hits else "no results")


@app.command()
def segment(
    model: ModelOption,
    store: StoreOption = None,
    segments: Annotated[
        int | None,
        typer.Option("--segments", "-k", min=1, max=1000, help="How many segments (default: chosen by silhouette)."),
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="CSV of user_id,segment_id,segment_name.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of k-means.")] = 42,
) -> None:
    """Cluster shoppers by taste into named segments, save them in the store (served at /v1/segments)
    and export shopper → segment as CSV for ad targeting."""
    engine = _engine(model, store)
    try:
        result = engine.compute_segments(segments, seed=seed)
    finally:
        engine.close()
    criterion = result.criterion
    if criterion["method"] == "given":
        console.print(f"{criterion['chosen_k']} segments (given)")
    else:
        tried = ", ".join(f"k={row['k']}: {row['silhouette']:.3f}" for row in criterion["scores"])
        console.print(f"{criterion['chosen_k']} segments, chosen by the best silhouette (cosine) of {tried}")
    table = Table(title=f"{len(result.assignments)} shoppers", title_justify="left")
    for column in ("segment", "shoppers", "name", "top categories"):
        table.add_column(column, justify="right" if column in {"segment", "shoppers"} else "left")
    for seg in result.segments:
        cats = ", ".join(f"{c['name']} {c['share']:.0%}" for c in seg.categories)
        table.add_row(str(seg.segment_id), str(seg.size), seg.name, cats)
    console.print(table)
    if out is not None:
        names = {seg.segment_id: seg.name for seg in result.segments}
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["user_id", "segment_id", "segment_name"])
            for user_id, segment_id in sorted(result.assignments.items()):
                writer.writerow([user_id, segment_id, names[segment_id]])
        console.print(f"wrote {len(result.assignments)} rows to {out}")
