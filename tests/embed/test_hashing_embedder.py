from __future__ import annotations

import numpy as np
import pytest

from llmrank.embed.base import Embedder, normalize_rows
from llmrank.embed.hashing import HashingEmbedder
from llmrank.registry import embedders


def test_registered_and_satisfies_protocol():
    emb = embedders.create("hashing", dim=64)
    assert isinstance(emb, Embedder)
    assert emb.dim == 64


def test_unit_norm_float32_and_deterministic():
    emb = HashingEmbedder(dim=128)
    texts = ["Toy Story (1995). Genres: Animation, Comedy", "Heat (1995). Genres: Crime", ""]
    a = emb.encode(texts)
    b = HashingEmbedder(dim=128).encode(texts)
    assert a.dtype == np.float32 and a.shape == (3, 128)
    np.testing.assert_allclose(np.linalg.norm(a[:2], axis=1), 1.0, rtol=1e-6)
    assert not a[2].any()  # empty text -> zero vector, not NaN
    np.testing.assert_array_equal(a, b)


def test_lexical_overlap_scores_higher():
    emb = HashingEmbedder(dim=256)
    q, near, far = emb.encode(["space robots adventure", "robots in space", "romantic comedy in paris"])
    assert q @ near > q @ far


def test_callback_reports_progress():
    seen: list[int] = []
    HashingEmbedder(dim=16).encode([f"t{i}" for i in range(10)], batch_size=4, callback=seen.append)
    assert seen == [4, 8, 10]


def test_normalize_rows_keeps_zero_rows():
    out = normalize_rows(np.array([[3.0, 4.0], [0.0, 0.0]]))
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]])


def test_normalize_rows_leaves_the_callers_array_alone():
    vectors = np.array([[3.0, 4.0]], dtype=np.float32)  # already float32 and contiguous
    out = normalize_rows(vectors)
    np.testing.assert_array_equal(vectors, [[3.0, 4.0]])
    np.testing.assert_allclose(out, [[0.6, 0.8]])


def test_rejects_tiny_dim():
    with pytest.raises(ValueError):
        HashingEmbedder(dim=2)
