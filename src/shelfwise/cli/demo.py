"""`shelfwise demo`: the flagship model on a synthetic shop, served by the engine the service runs:
its recommendations and their reasons beside a baseline's, a list that changes after one event with
no refit, a brand-new item placed from its text alone, and the command that serves it all."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.table import Table

from shelfwise.cli.app import app, console


@app.command()
def demo(
    items: Annotated[int, typer.Option("--items", min=50, help="Catalog size.")] = 2000,
    users: Annotated[int, typer.Option("--users", min=10, help="Number of shoppers.")] = 1500,
    budget: Annotated[
        float,
        typer.Option(
            "--budget",
            min=5.0,
            help="Seconds the sequential model's whole fit may take, the catalog's encoding included "
            "(about 40 s of the default on 2 cores the first time; the vectors are cached).",
        ),
    ] = 120.0,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Folder for the demo's model and store (default: <home>/demo, replaced)."),
    ] = None,
) -> None:
    """Train the flagship `sequential` model on a synthetic shop and show what the service does with it."""
    import shutil

    from shelfwise.data.dataset import Dataset
    from shelfwise.data.synthetic import generate_shop
    from shelfwise.engine import Engine
    from shelfwise.engine.build import write_serving_artifacts
    from shelfwise.models import create_model
    from shelfwise.settings import load_settings

    folder = out or load_settings().home / "demo"
    shutil.rmtree(folder, ignore_errors=True)
    model_dir, store = folder / "model", f"sqlite:///{folder / 'shop.db'}"
    with console.status("generating a synthetic shop"):
        shop = generate_shop(n_items=items, n_users=users, seed=seed)
        dataset = Dataset.from_frames(shop.events, shop.items, name="synthetic-shop")
    console.print(
        f"[bold]synthetic shop[/]: {dataset.n_items:,} items, {dataset.n_users:,} shoppers, "
        f"{dataset.n_interactions:,} events from {shop.start:%Y-%m-%d} to {shop.end:%Y-%m-%d}"
    )
    with console.status(f"training the sequential model (language model + transformer, up to {budget:g} s)"):
        model = create_model("sequential", max_seconds=budget, seed=seed).fit(dataset)
    console.print(f"trained [bold]sequential[/] in {model.fit_seconds_:.0f} s (its budget: {budget:g} s)")
    started = time.perf_counter()
    with console.status("saving the model with its serving artifacts"):
        model.save(model_dir)
        dataset.save(model_dir / "dataset")
        write_serving_artifacts(model_dir)
    console.print(f"saved to {model_dir} with its serving artifacts in {time.perf_counter() - started:.0f} s")
    baseline = create_model("ease").fit(dataset)
    with console.status("starting the engine the service runs (SQLite store)"):
        engine = Engine(model_dir, store)
    try:
        user = _pick_shopper(dataset, seed)
        _side_by_side(engine, dataset, baseline, user)
        _one_event(engine, dataset, user)
        _new_item(engine, user)
    finally:
        engine.close()
    console.print(
        "\n[bold]Serve this model with the web page[/] (then open http://127.0.0.1:8000):\n"
        f"  shelfwise serve --model {model_dir} --store {store}\n"
        "Compare models on a protocol of PROTOCOLS.md: shelfwise evaluate --help",
        soft_wrap=True,  # the command stays on one line, to copy
    )


def _pick_shopper(dataset, seed: int) -> str:
    """A shopper with a history long enough to show a taste (eight events or more)."""
    counts = dataset.interactions.groupby("user").size()
    chosen = np.random.default_rng(seed).choice(counts.index[counts >= 8].to_numpy())
    return str(dataset.user_ids[chosen])


def _titles(engine, item_ids: list[str]) -> list[str]:
    catalog = engine.catalog
    return [catalog.records[catalog.index[i]].title for i in item_ids]


def _side_by_side(engine, dataset, baseline, user: str) -> None:
    """Both lists leave out what the shopper has seen (as the web page's list does)."""
    recent = list(dict.fromkeys(e.item_id for e in reversed(engine.store.user_events(user))))[:4]
    console.print(f"\nshopper [bold]{user}[/] recently looked at: " + "; ".join(_titles(engine, recent)))
    ours = engine.recommend(user, 10, exclude_seen=True)
    candidates = dataset.items["in_stock"].to_numpy()
    ids, _ = baseline.recommend(int(dataset.user_index(user)), 10, candidates=candidates)
    theirs = [str(dataset.item_ids[i]) for i in ids if i >= 0]
    table = Table(title="top 10: shelfwise sequential (with its reasons) beside EASE", title_justify="left")
    for column in ("#", "shelfwise (sequential)", "why", "EASE (baseline)"):
        table.add_column(column, justify="right" if column == "#" else "left")
    baseline_titles = _titles(engine, theirs)
    for rank, rec in enumerate(ours, start=1):
        other = baseline_titles[rank - 1] if rank <= len(baseline_titles) else ""
        table.add_row(str(rank), rec.item.title, rec.reason.text, other)
    console.print(table)


def _show(title: str, recs, before: list[str], mark: str | None = None) -> None:
    table = Table(title=title, title_justify="left")
    for column in ("#", "item", "why", ""):
        table.add_column(column, justify="right" if column == "#" else "left")
    for rank, rec in enumerate(recs, start=1):
        note = "new in the list" if rec.item_id not in before else ""
        if rec.item_id == mark:
            note = "[bold]the item just added[/]"
        table.add_row(str(rank), rec.item.title, rec.reason.text, note)
    console.print(table)


def _one_event(engine, dataset, user: str) -> None:
    """One purchase outside the shopper's usual categories, recorded as the service records it; the
    next list reflects it without any refit."""
    from shelfwise.store import EventRecord

    before = [r.item_id for r in engine.recommend(user, 10, exclude_seen=True)]
    history = {e.item_id for e in engine.store.user_events(user)}
    catalog = engine.catalog
    usual = {catalog.records[catalog.index[i]].category.split(" > ")[0] for i in history}
    counts = dataset.interactions.groupby("item").size().sort_values(ascending=False)
    item = next(
        str(dataset.item_ids[i])
        for i in counts.index
        if str(dataset.item_ids[i]) not in history
        and catalog.records[catalog.index[str(dataset.item_ids[i])]].category.split(" > ")[0] not in usual
    )
    engine.record_events([EventRecord(user, item, "purchase", time.time())])
    title = catalog.records[catalog.index[item]].title
    _show(f"after one purchase ({title}), no refit", engine.recommend(user, 10, exclude_seen=True), before)


def _new_item(engine, user: str) -> None:
    """A new product, posted with text only (no sales, unknown to the model), that matches what the
    shopper looks at: it is placed in their list at once."""
    from dataclasses import replace

    before = [r.item_id for r in engine.recommend(user, 10, exclude_seen=True)]
    catalog = engine.catalog
    events = list(reversed(engine.store.user_events(user)))
    looked = [e.item_id for e in events if e.event_type != "purchase"] or [e.item_id for e in events]
    original = catalog.records[catalog.index[looked[0]]]  # what they looked at last
    new = replace(
        original,
        item_id="DEMO-NEW-1",
        title=f"{original.title} (new edition)",
        created_at=time.time(),
    )
    engine.upsert_items([new])
    recs = engine.recommend(user, 10, exclude_seen=True)
    console.print(f"\nposted a new item with text only: [bold]{new.title}[/] (no sales; the model never saw it)")
    _show("the shopper's list right after", recs, before, mark=new.item_id)
    if new.item_id not in [r.item_id for r in recs]:
        console.print("(not in this shopper's top 10: the model ranks other items above it)")
