import math

import numpy as np
import pytest

from shelfwise.evaluation.metrics import ndcg_at_k, pooled_recall_at_k, recall_at_k


def test_ndcg_single_target_by_position():
    ranked = np.array([[5, 7, 9], [7, 5, 9], [1, 2, 3]])
    relevant = [np.array([5]), np.array([5]), np.array([5])]
    assert ndcg_at_k(ranked, relevant, 3).tolist() == pytest.approx([1.0, 1 / math.log2(3), 0.0])


def test_ndcg_multiple_targets_ideal_is_capped_at_k():
    ranked = np.array([[1, 9, 2]])
    relevant = [np.array([1, 2, 3, 4])]
    dcg = 1 / math.log2(2) + 1 / math.log2(4)
    idcg = 1 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at_k(ranked, relevant, 3)[0] == pytest.approx(dcg / idcg)


def test_recall_and_padding_never_hits():
    ranked = np.array([[1, -1, -1], [4, 2, 3]])
    relevant = [np.array([1, 2]), np.array([2])]
    assert recall_at_k(ranked, relevant, 3).tolist() == pytest.approx([0.5, 1.0])
    assert recall_at_k(ranked, relevant, 1).tolist() == pytest.approx([0.5, 0.0])


def test_pooled_recall_pools_over_users():
    ranked = np.array([[1, 2], [3, 4]])
    relevant = [np.array([1, 7, 8]), np.array([4])]
    assert pooled_recall_at_k(ranked, relevant, 2) == pytest.approx(2 / 4)
    assert math.isnan(pooled_recall_at_k(ranked, [np.array([]), np.array([])], 2))
