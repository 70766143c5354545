from __future__ import annotations

import json

import numpy as np
import pytest
from _text_fixtures import OtherModelEmbedder, tiny_dataset

from llmrank.config import load_config
from llmrank.embed.hashing import HashingEmbedder
from llmrank.errors import IndexError_, UnknownBackendError
from llmrank.records import Filters, Item
from llmrank.registry import retrievers
from llmrank.retrieve import build_retriever, load_retriever, read_manifest, save_retriever
from llmrank.retrieve.manifest import MANIFEST_NAME
from llmrank.retrieve.text import TextRetriever


@pytest.fixture()
def cfg(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMRANK_HOME", str(tmp_path / "home"))
    return load_config({"embedder": {"backend": "hashing"}, "data": {"dataset": "tiny-src"}})


def test_save_load_round_trip(cfg, tmp_path):
    built = build_retriever(tiny_dataset(), cfg)
    out = tmp_path / "idx"
    manifest = save_retriever(built, out)
    assert manifest.kind == "text" and manifest.n_items == 80 and manifest.dim == 256
    on_disk = json.loads((out / MANIFEST_NAME).read_text())
    assert on_disk["embedder"]["backend"] == "hashing" and on_disk["embedder"]["model_id"]
    assert on_disk["dataset"]["name"] == "tiny" and on_disk["dataset"]["source"] == "tiny-src"
    assert on_disk["dataset"]["data_config"]["dataset"] == "tiny-src"  # reloadable exactly
    assert on_disk["index"]["kind"] == "flat" and on_disk["created"]
    assert read_manifest(out).settings["recency_half_life"] == 10.0

    loaded = load_retriever(out)
    assert isinstance(loaded, TextRetriever)
    hist = tiny_dataset().history("u1")
    f = Filters(attributes={"genre": frozenset({"comedy"})})
    assert loaded.retrieve(history=hist, k=5, filters=f) == built.retrieve(history=hist, k=5, filters=f)
    assert loaded.retrieve(text="ghost", k=3) == built.retrieve(text="ghost", k=3)
    assert loaded.items["i0"].genres == ("Horror",)


def test_rebuild_of_unchanged_catalog_embeds_nothing(cfg):
    build_retriever(tiny_dataset(), cfg)
    again = build_retriever(tiny_dataset(), cfg)
    assert again.embedder.last_misses == 0 and again.embedder.last_hits == 80  # type: ignore[attr-defined]


def test_refuses_to_overwrite_a_non_index_folder(cfg, tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "keep.txt").write_text("mine")
    with pytest.raises(IndexError_):
        save_retriever(build_retriever(tiny_dataset(), cfg), tmp_path / "docs")
    assert (tmp_path / "docs" / "keep.txt").read_text() == "mine"


def test_load_errors(tmp_path):
    with pytest.raises(IndexError_, match="llmrank index build"):
        load_retriever(tmp_path)
    (tmp_path / MANIFEST_NAME).write_text(json.dumps({
        "format": "llmrank.retriever/1", "kind": "no-such-kind", "dim": 4, "n_items": 0,
        "dataset": {"name": "x"}}))
    with pytest.raises(UnknownBackendError):
        load_retriever(tmp_path)


def test_dispatch_on_manifest_kind(cfg, tmp_path):
    class Wrapped(TextRetriever):
        kind = "wrapped-test"

    retrievers.register("wrapped-test", Wrapped)
    try:
        built = build_retriever(tiny_dataset(), cfg, kind="wrapped-test")
        save_retriever(built, tmp_path / "w")
        assert read_manifest(tmp_path / "w").kind == "wrapped-test"
        assert type(load_retriever(tmp_path / "w")) is Wrapped
    finally:
        retrievers._entries.pop("wrapped-test", None)


def test_real_catalog_user_never_gets_seen_items(ml_small, cfg):
    r = build_retriever(ml_small, cfg)
    uid = ml_small.user_ids[0]
    hist = ml_small.history(uid)
    got = r.retrieve_many([hist], k=50)[0]
    assert len(got) == 50 and not {c.item_id for c in got} & set(hist)


def test_loaded_index_refuses_an_embedder_other_than_the_one_it_was_built_with(cfg, tmp_path):
    """Text queries and new items must be embedded by the model that made the index's
    vectors: a different model of the same dim would silently score garbage."""
    salted = OtherModelEmbedder("hashing-salted")
    built = TextRetriever.build(tiny_dataset(), cfg, embedder=salted)
    save_retriever(built, tmp_path / "idx")
    loaded = load_retriever(tmp_path / "idx")  # the config's hashing embedder would be made
    with pytest.raises(IndexError_, match="hashing-salted"):
        loaded.retrieve(text="ghost", k=3)
    with pytest.raises(IndexError_, match="hashing-salted"):
        loaded.add_items([Item("new", "ghost haunted", 2000, ("Horror",))])
    wrong = load_retriever(tmp_path / "idx", embedder=HashingEmbedder())
    with pytest.raises(IndexError_, match="hashing-salted"):
        wrong.retrieve(text="ghost", k=3)
    right = load_retriever(tmp_path / "idx", embedder=OtherModelEmbedder("hashing-salted"))
    assert right.retrieve(text="ghost", k=3) == built.retrieve(text="ghost", k=3)


def test_loading_for_another_dataset_is_refused(cfg, tmp_path):
    """An index folder serves the dataset it was built on: item ids of another dataset
    (MovieLens releases share numeric ids for different films) would be silently wrong."""
    save_retriever(build_retriever(tiny_dataset(), cfg), tmp_path / "idx")
    assert load_retriever(tmp_path / "idx", dataset=tiny_dataset()).kind == "text"
    ds = tiny_dataset()
    other = ds.subset(np.ones(len(ds.interactions), dtype=bool), name="other", drop_unused=False)
    with pytest.raises(IndexError_, match=r"'tiny'.*'other'"):
        load_retriever(tmp_path / "idx", dataset=other)


def test_a_kcore_subset_of_the_same_dataset_may_use_the_index(cfg, tmp_path):
    """k-core filtering keeps the dataset's own ids ('tiny' and 'tiny-5core' name the same
    films), so an index built on one serves the other; another dataset is still refused."""
    ds = tiny_dataset()
    core = ds.subset(np.ones(len(ds.interactions), dtype=bool), name="tiny-5core", drop_unused=False)
    save_retriever(build_retriever(core, cfg), tmp_path / "core")
    assert load_retriever(tmp_path / "core", dataset=ds).kind == "text"
    save_retriever(build_retriever(ds, cfg), tmp_path / "full")
    assert load_retriever(tmp_path / "full", dataset=core).kind == "text"
    visible = ds.subset(np.ones(len(ds.interactions), dtype=bool), name="tiny-5core-visible-valid",
                        drop_unused=False)
    assert load_retriever(tmp_path / "full", dataset=visible).kind == "text"
    other = ds.subset(np.ones(len(ds.interactions), dtype=bool), name="tinyx-5core", drop_unused=False)
    with pytest.raises(IndexError_):
        load_retriever(tmp_path / "full", dataset=other)


def test_a_relative_embedder_model_path_is_recorded_absolute(tmp_path, monkeypatch):
    """``--embedder-model ./my-model`` works where the index is built; the index folder must
    still find that model when loaded from another working directory."""
    monkeypatch.setenv("LLMRANK_HOME", str(tmp_path / "home"))
    (tmp_path / "work" / "my-model").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "work")
    cfg = load_config({"embedder": {"backend": "hashing", "model": "my-model"}})
    save_retriever(build_retriever(tiny_dataset(), cfg), tmp_path / "idx")
    recorded = read_manifest(tmp_path / "idx").embedder
    assert recorded is not None and recorded.model == str(tmp_path / "work" / "my-model")
    monkeypatch.chdir(tmp_path)
    loaded = load_retriever(tmp_path / "idx")
    assert loaded.embedder_config.model == str(tmp_path / "work" / "my-model")
    named = load_config({"embedder": {"backend": "hashing", "model": "not-a-folder"}})
    save_retriever(build_retriever(tiny_dataset(), named), tmp_path / "idx2")
    assert read_manifest(tmp_path / "idx2").embedder.model == "not-a-folder"  # names stay names


def test_an_index_built_with_a_non_default_hashing_dim_reloads_its_embedder(cfg, tmp_path):
    """The manifest records the hashing model as 'hashing-v1-64'; loading must make that
    embedder again (it made a 256-d one, and every text query or added item was refused)."""
    built = TextRetriever.build(tiny_dataset(), cfg, embedder=HashingEmbedder(dim=64))
    save_retriever(built, tmp_path / "idx")
    loaded = load_retriever(tmp_path / "idx")
    assert loaded.index.dim == 64
    assert loaded.retrieve(text="ghost", k=3) == built.retrieve(text="ghost", k=3)
    loaded.add_items([Item("new", "ghost haunted", 2000, ("Horror",))])
    assert "new" in loaded.index


def test_a_loaded_index_takes_the_configs_serving_settings(cfg, tmp_path, monkeypatch):
    """The Recommender loaded ``index.path`` without its config: ``index.use_gpu = false``
    and the embedder's device, batch size and cache were ignored for a loaded index. The
    model stays the manifest's (it made the vectors)."""
    from llmrank.retrieve import text as text_mod

    save_retriever(build_retriever(tiny_dataset(), cfg), tmp_path / "idx")
    seen = {}
    real = text_mod.load_index

    def spy(path, use_gpu=True):
        seen["use_gpu"] = use_gpu
        return real(path, use_gpu=use_gpu)

    monkeypatch.setattr(text_mod, "load_index", spy)
    serving = load_config({"embedder": {"backend": "sentence-transformers", "model": "other",
                                        "device": "cpu", "batch_size": 7, "cache": False},
                           "index": {"use_gpu": False}})
    loaded = load_retriever(tmp_path / "idx", config=serving)
    assert seen["use_gpu"] is False
    emb = loaded.embedder_config
    assert (emb.backend, emb.device, emb.batch_size, emb.cache) == ("hashing", "cpu", 7, False)
    assert emb.model == read_manifest(tmp_path / "idx").embedder.model
    assert loaded.retrieve(text="ghost", k=3)  # the recorded embedder still answers text
