from __future__ import annotations

import numpy as np

from llmrank.explore.features import PCA, ItemFeatures


def _vectors(n=30, d=12, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)) + 3.0  # off-centre on purpose


def test_pca_keeps_the_top_directions_normalised_and_zero_rows_zero():
    x = _vectors()
    x[5] = 0.0  # an item without a vector
    pca = PCA.fit(x, 4)
    rows = pca.transform(x)
    assert rows.shape == (30, 4)
    assert np.allclose(rows[5], 0.0)
    known = np.delete(np.arange(30), 5)
    np.testing.assert_allclose(np.linalg.norm(rows[known], axis=1), 1.0)
    # the zero row takes no part in the fit: same projection as fitting without it
    alone = PCA.fit(x[known], 4)
    np.testing.assert_allclose(np.abs(alone.components @ pca.components.T), np.eye(4), atol=1e-9)
    # one vector maps like the same row of the table
    np.testing.assert_allclose(pca.transform(x[7])[0], rows[7])


def test_pca_wider_than_the_data_only_centres_and_normalises():
    x = _vectors(d=3)
    pca = PCA.fit(x, 8)
    assert pca.components is None
    rows = pca.transform(x)
    assert rows.shape == (30, 3)
    np.testing.assert_allclose(rows, (x - x.mean(0)) / np.linalg.norm(x - x.mean(0), axis=1, keepdims=True))


def test_reduced_features_share_everything_but_the_embeddings():
    x = _vectors(n=5, d=10)
    genres = (["a", "b"], np.array([[1, 0], [0, 1], [1, 1], [0, 0], [1, 0]], float))
    feats = ItemFeatures([f"i{j}" for j in range(5)], embeddings=x,
                         attributes={"genre": genres}, popularity=np.arange(5.0), n_users=9)
    small, pca = feats.reduced(2)
    assert pca is not None and small.embeddings.shape == (5, 2)
    assert small.attributes is feats.attributes and small.popularity is feats.popularity
    assert small.n_users == 9 and small.codes(["i3"])[0] == 3
    assert feats.embeddings.shape == (5, 10)  # the original is untouched
    same, none = feats.reduced(0)
    assert same is feats and none is None
    bare = ItemFeatures(["i0"])
    assert bare.reduced(4) == (bare, None)
