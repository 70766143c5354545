from __future__ import annotations

import pytest

from llmrank.index.faiss_index import FaissIndex
from llmrank.index.select import FLAT_MAX, HNSW_MAX, IndexParams, choose_kind


def test_kind_by_catalog_size():
    assert choose_kind(10) == "flat"
    assert choose_kind(FLAT_MAX) == "flat"
    assert choose_kind(FLAT_MAX + 1) == "hnsw"
    assert choose_kind(HNSW_MAX) == "hnsw"
    assert choose_kind(HNSW_MAX + 1) == "ivf"
    assert choose_kind(10, "ivf") == "ivf"  # forced by config
    with pytest.raises(ValueError):
        choose_kind(10, "annoy")


def test_index_uses_size_and_forced_kind():
    assert FaissIndex(8, expected_size=FLAT_MAX + 1).kind == "hnsw"
    assert FaissIndex(8, expected_size=HNSW_MAX + 1).kind == "ivf"
    assert FaissIndex(8, kind="flat", expected_size=10**7).kind == "flat"


def test_ivf_sizes_follow_sqrt():
    p = IndexParams().with_ivf_sizes(1_000_000)
    assert p.nlist == 1000 and p.nprobe == 125
    assert IndexParams(nlist=64, nprobe=4).with_ivf_sizes(10**6).nlist == 64
    assert IndexParams().with_ivf_sizes(25).nprobe == 5  # never more probes than lists
