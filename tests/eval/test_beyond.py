"""Beyond-accuracy metrics on hand-made lists."""

from __future__ import annotations

import math

import numpy as np
import pytest

from llmrank.eval.beyond import (
    catalog_coverage,
    genre_vectors,
    intra_list_diversity,
    novelty,
    popularity_bias,
    popularity_percentile,
    position_bias,
)


def test_coverage_counts_distinct_items_in_top_k():
    lists = np.array([[0, 1, 2], [1, 2, 3], [4, -1, -1]])
    assert catalog_coverage(lists, n_items=10, k=2) == pytest.approx(4 / 10)  # {0,1,2,4}
    assert catalog_coverage(lists, n_items=10, k=3) == pytest.approx(5 / 10)


def test_intra_list_diversity_hand_computed():
    vec = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 0.0]])
    d = intra_list_diversity(np.array([[0, 1, -1], [0, 3, -1], [0, 1, 2], [2, -1, -1]]), vec, k=3)
    assert d[0] == pytest.approx(1.0)  # orthogonal
    assert d[1] == pytest.approx(0.0)  # same direction
    c = 1 / math.sqrt(2)  # pairs (0,1)=0, (0,2)=c, (1,2)=c similarity
    assert d[2] == pytest.approx(1 - (0 + c + c) / 3)
    assert math.isnan(d[3])


def test_novelty_and_popularity():
    pop = np.array([6, 2, 0, 0])  # smoothed p = (7, 3, 1, 1) / 12
    lists = np.array([[0, 1], [2, -1]])
    nov = novelty(lists, pop, k=2)
    assert nov[0] == pytest.approx((-math.log2(7 / 12) - math.log2(3 / 12)) / 2)
    assert nov[1] == pytest.approx(-math.log2(1 / 12))
    assert popularity_percentile(pop).tolist() == pytest.approx([1.0, 2 / 3, 1 / 6, 1 / 6])
    assert popularity_bias(lists, pop, k=2).tolist() == pytest.approx([5 / 6, 1 / 6])


def test_position_bias_groups_by_target_position():
    pb = position_bias(np.array([0, 0, 1, 2, -1]), np.array([1.0, 0.0, 0.5, 0.25, 9.0]), "m")
    assert pb is not None
    assert pb.positions == [0, 1, 2] and pb.means == [0.5, 0.5, 0.25]
    assert pb.counts == [2, 1, 1] and pb.spread() == pytest.approx(0.25)
    assert position_bias(np.full(3, -1), np.ones(3), "m") is None


def test_genre_vectors(synth):
    v = genre_vectors(synth)
    assert v.shape[0] == synth.n_items and (v.sum(axis=1) == 1).all()
