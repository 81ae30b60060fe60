"""Recommenders, one file each, all behind the `Recommender` base."""

from shelfwise.models.base import Recommender, create_model, get_model_class, model_names, topk
from shelfwise.models.content import ContentKNN
from shelfwise.models.ease import EASE
from shelfwise.models.factorization import ALS, BPR
from shelfwise.models.itemknn import ItemKNN
from shelfwise.models.mf import MF
from shelfwise.models.popularity import Popularity
from shelfwise.models.sequential import SequentialRecommender

BASELINES = ("popularity", "itemknn", "als", "bpr", "ease", "mf", "content")

__all__ = [
    "ALS",
    "BASELINES",
    "BPR",
    "EASE",
    "MF",
    "ContentKNN",
    "ItemKNN",
    "Popularity",
    "Recommender",
    "SequentialRecommender",
    "create_model",
    "get_model_class",
    "model_names",
    "topk",
]
