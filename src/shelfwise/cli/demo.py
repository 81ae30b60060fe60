"""`shelfwise demo`: a synthetic shop, a side-by-side evaluation, and recommendations for a few shoppers."""

from __future__ import annotations

from typing import Annotated

import numpy as np
import pandas as pd
import typer
from rich.table import Table

from shelfwise.cli import app, console


@app.command()
def demo(
    items: Annotated[int, typer.Option("--items", min=50, help="Catalog size.")] = 2000,
    users: Annotated[int, typer.Option("--users", min=10, help="Number of shoppers.")] = 1500,
    shoppers: Annotated[int, typer.Option("--shoppers", min=1, help="Shoppers to show.")] = 3,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    text: Annotated[
        bool, typer.Option("--text/--no-text", help="Also show new arrivals ranked by the language model.")
    ] = True,
) -> None:
    """Generate a synthetic shop, compare the baselines on it (P1) and show recommendations."""
    from shelfwise.cli.evaluate import results_table
    from shelfwise.data.dataset import Dataset
    from shelfwise.data.synthetic import generate_shop
    from shelfwise.evaluation.runner import evaluate
    from shelfwise.models import create_model

    with console.status("generating a synthetic shop"):
        shop = generate_shop(n_items=items, n_users=users, seed=seed)
        dataset = Dataset.from_frames(shop.events, shop.items, name="synthetic-shop")
    console.print(
        f"[bold]synthetic shop[/]: {dataset.n_items:,} items, {dataset.n_users:,} shoppers, "
        f"{dataset.n_interactions:,} events from {shop.start:%Y-%m-%d} to {shop.end:%Y-%m-%d}"
    )
    with console.status("evaluating baselines under protocol P1 (leave-last-out)"):
        records = evaluate(dataset, "p1", ["popularity", "itemknn", "ease", "als"], tuned=False)
    console.print(results_table(records))

    model = create_model("ease").fit(dataset)
    rng = np.random.default_rng(seed)
    counts = dataset.interactions.groupby("user").size()
    chosen = rng.choice(counts.index[counts >= 8].to_numpy(), size=min(shoppers, (counts >= 8).sum()), replace=False)
    ids, _ = model.recommend(chosen, 5, candidates=dataset.items["in_stock"].to_numpy())
    titles = dataset.items["title"].to_numpy()
    categories = dataset.items["category"].to_numpy()
    prices = dataset.items["price"].to_numpy()
    sequences = dataset.sequences()
    for row, user in enumerate(chosen):
        recent = list(dict.fromkeys(sequences[user][::-1]))[:4]
        table = Table(
            title=f"shopper {dataset.user_ids[user]}: recently looked at " + "; ".join(titles[i] for i in recent),
            title_justify="left",
        )
        table.add_column("#", justify="right")
        table.add_column("recommended (EASE)")
        table.add_column("category")
        table.add_column("price", justify="right")
        for rank, item in enumerate(ids[row], start=1):
            if item < 0:
                continue
            table.add_row(str(rank), titles[item], categories[item], f"{prices[item]:.2f}")
        console.print(table)
    if text:
        show_new_arrivals(dataset, int(chosen[0]))


def show_new_arrivals(dataset, user: int, *, days: int = 14) -> None:
    """ContentKNN ranks the newest items (most with no sales yet) for one shopper from their text."""
    from shelfwise.models import create_model

    created = dataset.items["created_at"]
    fresh = (created >= created.max() - pd.Timedelta(days=days)).to_numpy()
    with console.status("encoding the catalog with the language model (cached after the first run)"):
        model = create_model("content").fit(dataset)
    ids, _ = model.recommend(user, 5, candidates=fresh & dataset.items["in_stock"].to_numpy())
    sold = np.asarray(dataset.user_items(binary=True).sum(axis=0)).ravel()
    table = Table(
        title=f"new arrivals for shopper {dataset.user_ids[user]} (language model, last {days} days)",
        title_justify="left",
    )
    table.add_column("#", justify="right")
    table.add_column("new item")
    table.add_column("shoppers so far", justify="right")
    for rank, item in enumerate(ids, start=1):
        if item >= 0:
            table.add_row(str(rank), dataset.items["title"].iloc[item], str(int(sold[item])))
    console.print(table)
