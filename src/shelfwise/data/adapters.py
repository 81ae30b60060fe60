"""Adapters that load the public data sets in their published layouts, and format detection.

Each adapter returns a `Dataset` whose interactions follow ../shared/PROTOCOLS.md: the ids it names,
time order with ties in source order, and the item text it prescribes.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from shelfwise.data.cleaning import clean_text_column
from shelfwise.data.dataset import Dataset
from shelfwise.errors import DataFormatError, DatasetNotFoundError
from shelfwise.settings import load_settings

logger = logging.getLogger(__name__)

DATASET_FORMATS = ("online-retail", "amazon2018", "movielens-100k", "movielens", "shelfwise")
#: Canonical folder names in ../shared/data and the protocol each is reported under.
KNOWN_DATASETS = {
    "online-retail-uci": "p2",
    "amazon2018-all-beauty": "p1",
    "movielens-100k": "p1",
    "movielens-latest-small": "p1",
}
ML100K_GENRES = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
_STOCK_CODE = r"^[0-9]{5}[A-Za-z]*$"


def data_dir() -> Path:
    """Where the public data sets live: `SHELFWISE_DATA_DIR`, by default ../shared/data."""
    return load_settings().data_dir


def _first(folder: Path, *names: str) -> Path | None:
    for name in names:
        if (folder / name).is_file():
            return folder / name
    return None


def detect_dataset_format(path: str | os.PathLike[str]) -> str:
    """Tell a data set folder's layout from the files in it."""
    folder = Path(path)
    if not folder.is_dir():
        raise DatasetNotFoundError(f"No such data set folder: {folder}")
    if (folder / "dataset.json").is_file():
        return "shelfwise"
    if _first(folder, "online_retail.parquet", "online_retail.csv.gz", "online_retail.csv"):
        return "online-retail"
    if _first(folder, "interactions.csv.gz", "interactions.csv") and _first(folder, "items.csv.gz", "items.csv"):
        return "amazon2018"
    if _first(folder, "u.data.gz", "u.data"):
        return "movielens-100k"
    if _first(folder, "ratings.csv.gz", "ratings.csv") and _first(folder, "movies.csv.gz", "movies.csv"):
        return "movielens"
    raise DataFormatError(
        f"Cannot tell the layout of {folder}: expected dataset.json (an ingested folder), "
        "online_retail.parquet, interactions.csv.gz + items.csv.gz, u.data.gz, or ratings.csv.gz + "
        f"movies.csv.gz. Pass --format with one of {DATASET_FORMATS}."
    )


def load_dataset(path: str | os.PathLike[str], format: str | None = None) -> Dataset:
    """Load a data set folder: a public data set in its own layout, or a folder from `shelfwise ingest`.

    A bare name such as ``online-retail-uci`` is looked up in the data directory.
    """
    folder = Path(path)
    if not folder.exists() and not folder.is_absolute() and (data_dir() / folder).is_dir():
        folder = data_dir() / folder
    fmt = format or detect_dataset_format(folder)
    loaders = {
        "online-retail": load_online_retail,
        "amazon2018": load_amazon2018,
        "movielens-100k": load_movielens_100k,
        "movielens": load_movielens,
        "shelfwise": Dataset.load,
    }
    if fmt not in loaders:
        raise DataFormatError(f"Unknown data set format {fmt!r}; valid formats are {DATASET_FORMATS}.")
    if not folder.is_dir():
        raise DatasetNotFoundError(f"No such data set folder: {folder}")
    return loaders[fmt](folder)


def load_online_retail(folder: str | os.PathLike[str]) -> Dataset:
    """UCI Online Retail: the kept rows of protocol P2 as purchases (value = quantity).

    Item text is the most frequent non-empty Description (ties: the lexicographically smallest);
    price is the median UnitPrice.
    """
    folder = Path(folder)
    source = _first(folder, "online_retail.parquet", "online_retail.csv.gz", "online_retail.csv")
    if source is None:
        raise DatasetNotFoundError(f"{folder} has no online_retail.parquet or online_retail.csv.gz")
    if source.suffix == ".parquet":
        raw = pd.read_parquet(source)
    else:
        raw = pd.read_csv(
            source,
            dtype={"InvoiceNo": str, "StockCode": str, "Description": str, "CustomerID": "Int64", "Country": str},
            keep_default_na=False,
            na_values={"CustomerID": [""], "Description": [""]},
        )
    raw["InvoiceDate"] = pd.to_datetime(raw["InvoiceDate"])
    description = raw["Description"].astype(object)
    description = description.where(
        description.notna() & (description.astype(str).str.strip() != "") & (description.astype(str) != "nan"), None
    )
    customer = pd.to_numeric(raw["CustomerID"], errors="coerce")
    invoice = raw["InvoiceNo"].astype(str)
    code = raw["StockCode"].astype(str)
    keep = (
        customer.notna()
        & ~invoice.str.startswith("C")
        & (raw["Quantity"] > 0)
        & (raw["UnitPrice"] > 0)
        & code.str.match(_STOCK_CODE)
    ).to_numpy()
    logger.info("online retail: kept %d of %d rows", int(keep.sum()), len(raw))
    rows = raw.loc[keep]
    events = pd.DataFrame(
        {
            "user_id": customer[keep].astype(np.int64).astype(str).to_numpy(),
            "item_id": code[keep].to_numpy(),
            "event_type": "purchase",
            "timestamp": pd.to_datetime(rows["InvoiceDate"]).dt.tz_localize("UTC").to_numpy(),
            "value": rows["Quantity"].to_numpy(dtype=float),
        }
    )
    text = pd.DataFrame({"item_id": events["item_id"], "description": description[keep].to_numpy()})
    text = text.dropna(subset=["description"])
    counts = text.groupby(["item_id", "description"]).size().rename("n").reset_index()
    counts = counts.sort_values(["item_id", "n", "description"], ascending=[True, False, True])
    titles = counts.drop_duplicates("item_id").set_index("item_id")["description"]
    prices = pd.DataFrame({"item_id": events["item_id"], "price": rows["UnitPrice"].to_numpy()})
    prices = prices.groupby("item_id")["price"].median()
    items = pd.DataFrame({"item_id": prices.index.astype(str)})
    items["title"] = clean_text_column(items["item_id"].map(titles).astype(object))
    items["price"] = items["item_id"].map(prices).astype(float)
    return Dataset.from_frames(
        events,
        items,
        name=folder.name,
        keep_items_without_events=False,
        meta={"source_format": "online-retail", "protocol": "p2"},
    )


def load_amazon2018(folder: str | os.PathLike[str]) -> Dataset:
    """Amazon 2018 sequence format: users by `user_id`, items by `item_id`, order by `seq_pos`."""
    folder = Path(folder)
    interactions_file = _first(folder, "interactions.csv.gz", "interactions.csv")
    items_file = _first(folder, "items.csv.gz", "items.csv")
    if interactions_file is None or items_file is None:
        raise DatasetNotFoundError(f"{folder} lacks interactions.csv.gz or items.csv.gz")
    raw = pd.read_csv(interactions_file, dtype={"user_id": str, "item_id": str, "asin": str})
    for column in ("user_id", "item_id", "seq_pos"):
        if column not in raw.columns:
            raise DataFormatError(f"{interactions_file}: missing column {column!r}; it has {list(raw.columns)}")
    raw["_pos"] = np.arange(len(raw))
    raw = raw.sort_values(["seq_pos", "_pos"], kind="stable")
    # No timestamps: order within a user is seq_pos; Dataset breaks time ties by row order.
    raw = raw.sort_values("user_id", kind="stable")
    events = pd.DataFrame(
        {
            "user_id": raw["user_id"].to_numpy(),
            "item_id": raw["item_id"].to_numpy(),
            "event_type": "purchase",
            "timestamp": pd.Series(pd.NaT, index=range(len(raw)), dtype="datetime64[ns, UTC]"),
            "value": np.nan,
        }
    )
    catalog = pd.read_csv(items_file, dtype=str, keep_default_na=False)
    items = pd.DataFrame({"item_id": catalog["item_id"]})
    items["title"] = clean_text_column(catalog["title"].replace("", None))
    items["description"] = clean_text_column(
        catalog["description"].replace("", None), empty_markers=("Empty description",)
    )
    return _p1_dataset(events, items, folder, "amazon2018")


def load_movielens_100k(folder: str | os.PathLike[str]) -> Dataset:
    """MovieLens 100k: `u.data` (tab-separated) and `u.item` (latin-1, title and genre flags)."""
    folder = Path(folder)
    data_file = _first(folder, "u.data.gz", "u.data")
    item_file = _first(folder, "u.item.gz", "u.item")
    if data_file is None:
        raise DatasetNotFoundError(f"{folder} has no u.data.gz")
    raw = pd.read_csv(
        data_file, sep="\t", header=None, names=["user", "item", "rating", "ts"], dtype={"user": str, "item": str}
    )
    events = _rating_events(raw["user"], raw["item"], raw["rating"], raw["ts"])
    items = None
    if item_file is not None:
        names = ["item_id", "title", "release", "video_release", "url", *ML100K_GENRES]
        table = pd.read_csv(
            item_file, sep="|", header=None, names=names, encoding="latin-1", dtype={"item_id": str, "title": str}
        )
        flags = table[list(ML100K_GENRES)].to_numpy(dtype=bool)
        genres = [[g for g, on in zip(ML100K_GENRES, row, strict=True) if on] for row in flags]
        items = _movie_items(table["item_id"], table["title"], genres)
    return _p1_dataset(events, items, folder, "movielens-100k")


def load_movielens(folder: str | os.PathLike[str]) -> Dataset:
    """MovieLens latest (ratings.csv + movies.csv). Tags are not used: they can leak test targets."""
    folder = Path(folder)
    ratings_file = _first(folder, "ratings.csv.gz", "ratings.csv")
    movies_file = _first(folder, "movies.csv.gz", "movies.csv")
    if ratings_file is None:
        raise DatasetNotFoundError(f"{folder} has no ratings.csv.gz")
    raw = pd.read_csv(ratings_file, dtype={"userId": str, "movieId": str})
    events = _rating_events(raw["userId"], raw["movieId"], raw["rating"], raw["timestamp"])
    items = None
    if movies_file is not None:
        table = pd.read_csv(movies_file, dtype=str, keep_default_na=False)
        genres = [[] if g == "(no genres listed)" else g.split("|") for g in table["genres"]]
        items = _movie_items(table["movieId"], table["title"], genres)
    return _p1_dataset(events, items, folder, "movielens")


def _movie_items(ids: pd.Series, titles: pd.Series, genres: list[list[str]]) -> pd.DataFrame:
    """Movies as catalog items: title, genres as tags and the first genre as category."""
    return pd.DataFrame(
        {
            "item_id": ids.astype(str).to_numpy(),
            "title": clean_text_column(titles.astype(object)).to_numpy(),
            "category": [g[0] if g else None for g in genres],
            "tags": genres,
        }
    )


def _rating_events(users: pd.Series, items: pd.Series, ratings: pd.Series, seconds: pd.Series) -> pd.DataFrame:
    """MovieLens ratings as `rating` events (value = the rating, time from unix seconds)."""
    return pd.DataFrame(
        {
            "user_id": users.to_numpy(),
            "item_id": items.to_numpy(),
            "event_type": "rating",
            "timestamp": pd.to_datetime(seconds, unit="s", utc=True).to_numpy(),
            "value": ratings.to_numpy(dtype=float),
        }
    )


def _p1_dataset(events: pd.DataFrame, items: pd.DataFrame | None, folder: Path, source_format: str) -> Dataset:
    """A P1 data set: candidates are the items with interactions, so catalog-only items are left out."""
    return Dataset.from_frames(
        events,
        items,
        name=folder.name,
        keep_items_without_events=False,
        meta={"source_format": source_format, "protocol": "p1"},
    )
