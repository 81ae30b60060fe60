"""Offline evaluation: metrics, the protocols of PROTOCOLS.md, and side-by-side runs."""

from shelfwise.evaluation.metrics import ndcg_at_k, pooled_recall_at_k, recall_at_k
from shelfwise.evaluation.protocols import Split, check_no_leakage, make_splits, p1_splits, p2_splits
from shelfwise.evaluation.runner import evaluate, fit_and_score, score_split, tune

__all__ = [
    "Split",
    "check_no_leakage",
    "evaluate",
    "fit_and_score",
    "make_splits",
    "ndcg_at_k",
    "p1_splits",
    "p2_splits",
    "pooled_recall_at_k",
    "recall_at_k",
    "score_split",
    "tune",
]
