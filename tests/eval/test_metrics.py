"""Hand-computed values for the per-user metrics and tie handling."""

from __future__ import annotations

import math

import numpy as np
import pytest

from llmrank.eval.metrics import (
    metrics_from_ranks,
    rank_of,
    ranking_metrics,
    target_ranks,
    tie_keys,
    top_k,
)


def test_metrics_from_ranks_hand_computed():
    m = metrics_from_ranks(np.array([1, 3, 11, np.inf]), ks=(1, 5, 10))
    assert m["recall@1"].tolist() == [1, 0, 0, 0]
    assert m["recall@5"].tolist() == [1, 1, 0, 0]
    assert m["recall@10"].tolist() == [1, 1, 0, 0]
    assert m["ndcg@5"] == pytest.approx([1.0, 0.5, 0, 0])  # 1/log2(3+1) = 0.5
    assert m["mrr@10"] == pytest.approx([1.0, 1 / 3, 0, 0])
    assert m["ndcg@1"].tolist() == [1, 0, 0, 0]


def test_target_ranks_masks_and_ties():
    scores = np.array([[0.9, 0.5, 0.5, 0.1], [0.2, -np.inf, 0.4, 0.3], [1, 1, 1, 1]])
    targets = np.array([2, 1, 0])
    pess = target_ranks(scores, targets, ties="pessimistic")
    opt = target_ranks(scores, targets, ties="optimistic")
    assert pess.tolist() == [3, math.inf, 4]
    assert opt.tolist() == [2, math.inf, 1]
    assert target_ranks(scores, np.array([-1, 0, 3])).tolist() == [math.inf, 3, 4]


def test_unscored_target_is_ranked_last_not_missed():
    """NaN = the ranker could not score it: after every score (finite rank), while -inf
    (masked) stays a miss; other NaN items never beat a scored target."""
    scores = np.array([[0.9, np.nan, 0.5, -np.inf],
                       [0.9, np.nan, np.nan, 0.1],
                       [np.nan, 0.2, -np.inf, np.nan],
                       [0.3, 0.2, -np.inf, np.nan]])
    targets = np.array([1, 2, 2, 1])
    assert target_ranks(scores, targets).tolist() == [3, 4, math.inf, 2]
    assert target_ranks(scores, targets, ties="optimistic").tolist() == [3, 3, math.inf, 2]
    lists = top_k(scores, 4, tie_keys(scores.shape, targets))
    assert lists.tolist()[1] == [0, 3, 1, 2]  # scored, then unscored (target last), masked
    assert lists.tolist()[0] == [0, 2, 1, 3]


def test_random_ties_are_uniform():
    scores = np.zeros((4000, 5))
    ranks = target_ranks(scores, np.zeros(4000, int), ties="random", rng=np.random.default_rng(1))
    counts = np.bincount(ranks.astype(int), minlength=6)[1:]
    assert counts.min() > 700 and counts.max() < 900


def test_top_k_agrees_with_ranks():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 4, size=(50, 12)).astype(float)
    scores[rng.random(scores.shape) < 0.2] = np.nan  # unscored cells rank after the scored
    targets = rng.integers(0, 12, size=50)
    for ties in ("pessimistic", "optimistic", "random"):
        keys = tie_keys(scores.shape, targets, ties, np.random.default_rng(3))
        lists = top_k(scores, 12, keys)
        ranks = target_ranks(scores, targets, keys=keys)
        assert [rank_of(lst, t) for lst, t in zip(lists, targets, strict=True)] == ranks.tolist()


def test_ranking_metrics_multi_relevance():
    m = ranking_metrics([[5, 1, 7, 3]], [{1, 3}], ks=(2, 4))
    assert m["recall@2"][0] == pytest.approx(0.5)
    assert m["recall@4"][0] == pytest.approx(1.0)
    idcg = 1 + 1 / math.log2(3)
    assert m["ndcg@4"][0] == pytest.approx((1 / math.log2(3) + 1 / math.log2(5)) / idcg)
    assert m["mrr@4"][0] == pytest.approx(0.5)


def test_multi_relevance_ideal_dcg_is_cut_at_k():
    """More relevant items than k: the ideal list holds only k of them (IDCG@k), so a first
    hit is a perfect ndcg@1 whatever else is relevant."""
    m = ranking_metrics([[1, 5, 3]], [{1, 3, 7}], ks=(1, 2, 3))
    assert m["ndcg@1"][0] == pytest.approx(1.0)
    assert m["ndcg@2"][0] == pytest.approx(1 / (1 + 1 / math.log2(3)))
    assert m["ndcg@3"][0] == pytest.approx((1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3) + 1 / math.log2(4)))
    assert m["recall@1"][0] == pytest.approx(1 / 3) and m["recall@3"][0] == pytest.approx(2 / 3)
    assert m["mrr@3"][0] == pytest.approx(1.0)


def test_multi_relevance_matches_ranx():
    ranx = pytest.importorskip("ranx")
    ranked = [[1, 5, 3], [5, 1, 7, 3, 9], [9, 8, 2, 4, 6, 1], [2, 4]]
    relevant = [{1, 3, 7}, {3, 7}, {1, 2, 4, 6, 8, 9, 11}, {5, 6}]
    ks = (1, 2, 3, 5)
    ours = ranking_metrics(ranked, relevant, ks=ks)
    qrels = ranx.Qrels({f"q{u}": {str(i): 1 for i in rel} for u, rel in enumerate(relevant)})
    run = ranx.Run({f"q{u}": {str(i): float(len(lst) - r) for r, i in enumerate(lst)}
                    for u, lst in enumerate(ranked)})
    names = [f"{m}@{k}" for m in ("ndcg", "recall", "mrr") for k in ks]
    ranx.evaluate(qrels, run, names)
    for name in names:
        theirs = [run.scores[name][f"q{u}"] for u in range(len(ranked))]
        assert ours[name] == pytest.approx(theirs, abs=1e-9), name


def test_single_target_versions_agree():
    rng = np.random.default_rng(0)
    scores = rng.random((30, 40))
    targets = rng.integers(0, 40, 30)
    ranks = target_ranks(scores, targets)
    lists = top_k(scores, 40)
    a = metrics_from_ranks(ranks, (1, 5, 10, 20))
    b = ranking_metrics(lists.tolist(), [[t] for t in targets], (1, 5, 10, 20))
    for name in a:
        assert a[name] == pytest.approx(b[name])


def test_secondary_scores_break_ties_before_the_policy():
    """Equal scores go by the ranker's tie scores; only what ties in both goes to the policy."""
    scores = np.zeros((3, 4))
    secondary = np.array([[1.0, 3.0, 2.0, 3.0]] * 3)
    targets = np.array([3, 2, 0])
    for ties, expect in (("pessimistic", [2, 3, 4]), ("optimistic", [1, 3, 4])):
        keys = tie_keys(scores.shape, targets, ties)
        ranks = target_ranks(scores, targets, keys=keys, secondary=secondary)
        assert ranks.tolist() == expect
        lists = top_k(scores, 4, keys, secondary)
        assert [rank_of(lst, t) for lst, t in zip(lists, targets, strict=True)] == expect
    # a higher primary score always wins, whatever the tie scores say
    assert target_ranks(np.array([[1.0, 0.0]]), np.array([1]), secondary=np.array([[0.0, 9.0]])
                        ).tolist() == [2]
    assert target_ranks(scores, targets, secondary=np.full((3, 4), np.nan)).tolist() == [4, 4, 4]


def test_top_k_agrees_with_ranks_given_secondary():
    rng = np.random.default_rng(1)
    scores = rng.integers(0, 3, size=(60, 10)).astype(float)
    secondary = rng.integers(0, 3, size=(60, 10)).astype(float)
    targets = rng.integers(0, 10, size=60)
    for ties in ("pessimistic", "optimistic", "random"):
        keys = tie_keys(scores.shape, targets, ties, np.random.default_rng(2))
        lists = top_k(scores, 10, keys, secondary)
        ranks = target_ranks(scores, targets, keys=keys, secondary=secondary)
        assert [rank_of(lst, t) for lst, t in zip(lists, targets, strict=True)] == ranks.tolist()


def test_metrics_from_ranks_refuses_nan_and_sub_one_ranks():
    """inf is the documented 'never ranked' (a miss); NaN is not a rank and was silently
    scored as a miss, and a 0-based rank 0 gave NDCG = 1/log2(1) = inf."""
    for bad in (np.nan, 0.0, -1.0, 0.5):
        with pytest.raises(ValueError, match="rank"):
            metrics_from_ranks(np.array([1.0, bad, np.inf]), ks=(10,))
    m = metrics_from_ranks(np.array([1.0, 2.0, np.inf]), ks=(10,))
    assert m["ndcg@10"] == pytest.approx([1.0, 1 / math.log2(3), 0.0])
    assert metrics_from_ranks(np.array([]), ks=(10,))["mrr@10"].shape == (0,)
