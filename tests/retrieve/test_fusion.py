"""Fusion of behavioural and text vectors: the projection math, the count blend, and the
cold-start behaviour of the fused retriever (items nobody interacted with, and items added
to a live index from their text alone, are still retrieved)."""

from __future__ import annotations

import numpy as np
import pytest
from _seq_fixtures import tiny_config
from _text_fixtures import OtherModelEmbedder

from llmrank.config import load_config
from llmrank.embed.hashing import HashingEmbedder
from llmrank.errors import IndexError_
from llmrank.records import Filters, Item
from llmrank.registry import retrievers
from llmrank.retrieve import load_retriever, read_manifest, save_retriever
from llmrank.retrieve.fused import FusedRetriever
from llmrank.retrieve.fusion import (
    ColdPlacement,
    FusionConfig,
    TextProjection,
    blend_weights,
    choose_ridge,
    fuse,
)
from llmrank.retrieve.sequential.retriever import SequentialRetriever, index_vectors
from llmrank.retrieve.sequential.synthetic import cyclic_dataset, item_id

COLD = (item_id(0, 3), item_id(2, 7))


@pytest.fixture(scope="module")
def cold_dataset():
    return cyclic_dataset(cold=COLD)


@pytest.fixture(scope="module")
def cfg():
    return load_config({"embedder": {"backend": "hashing"}})


@pytest.fixture(scope="module")
def fused(cold_dataset, cfg):
    return FusedRetriever.build(cold_dataset, cfg, embedder=HashingEmbedder(),
                                seq_config=tiny_config("sasrec"))


def test_projection_recovers_a_linear_map():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 12))
    true = rng.normal(size=(12, 5))
    y = x @ true + 0.5
    proj = TextProjection.fit(x, y, ridge=1e-6)
    np.testing.assert_allclose(proj(x), y, atol=1e-3)
    assert proj.text_dim == 12 and proj.dim == 5
    noisy = y + rng.normal(scale=3.0, size=y.shape)
    assert choose_ridge(x, noisy, np.full(400, 5), ridges=(1e-3, 1e6)) == 1e-3


def test_projection_save_load(tmp_path):
    proj = TextProjection(np.arange(12, dtype=np.float64).reshape(4, 3), 0.5)
    proj.save(tmp_path / "p.npz")
    again = TextProjection.load(tmp_path / "p.npz")
    np.testing.assert_array_equal(again.weight, proj.weight)
    assert again.ridge == 0.5


def test_blend_weights_follow_counts():
    counts = np.array([0, 1, 4, 100])
    assert blend_weights(counts, 0.0).tolist() == [0.0, 1.0, 1.0, 1.0]
    np.testing.assert_allclose(blend_weights(counts, 4.0), [0.0, 0.2, 0.5, 100 / 104])
    b, p = np.ones((4, 2)), np.zeros((4, 2))
    np.testing.assert_allclose(fuse(b, p, counts, 4.0)[:, 0], [0.0, 0.2, 0.5, 100 / 104],
                               rtol=1e-6)


def test_fusion_config_round_trip():
    fc = FusionConfig(kappa=2.0, ridges=(1.0,))
    assert FusionConfig.from_dict(fc.to_dict()) == fc


def test_a_misspelt_fusion_setting_is_refused():
    """``retriever.options.fusion = {half_lfe = 5}`` fitted the default half-life silently."""
    from llmrank.errors import ConfigError

    with pytest.raises(ConfigError, match="half_lfe"):
        FusionConfig.from_dict({"half_lfe": 5})
    with pytest.raises(ConfigError, match="invalid"):
        FusionConfig.from_dict({"ridges": ["lots"]})


def test_cold_items_are_retrievable_from_text(fused, cfg):
    """A cold item (no interactions at all) is found from its neighbourhood: the history
    that precedes it in its genre's cycle. The same model without text cannot find it."""
    assert fused.report["cold_items"] == 2 and fused.counts.get(COLD[0], 0) == 0
    behaviour_only = SequentialRetriever(
        fused.model, index_vectors(fused.model.item_ids, fused.model.item_vectors(), cfg),
        fused.items)
    for genre, pos in ((0, 3), (2, 7)):
        hist = [item_id(genre, pos - k) for k in (3, 2, 1)]
        target = item_id(genre, pos)
        f = [c.item_id for c in fused.retrieve(history=hist, k=37)]
        s = [c.item_id for c in behaviour_only.retrieve(history=hist, k=37)]
        assert f.index(target) < 10  # within the genre's 10 items, out of 37 candidates
        assert f.index(target) < s.index(target)


def test_warm_retrieval_still_follows_the_cycle(fused):
    hist = [item_id(1, p) for p in (3, 4, 5)]
    assert fused.retrieve(history=hist, k=3)[0].item_id == item_id(1, 6)


def test_history_with_a_cold_item_and_text_queries(fused):
    got = [c.item_id for c in fused.retrieve(history=[item_id(0, 1), COLD[0]], k=5)]
    assert COLD[0] not in got and all(g.startswith("g0") for g in got[:3])
    horror = [c.item_id for c in fused.retrieve(text="ghost haunted scream", k=5)]
    assert sum(h.startswith("g2") for h in horror) >= 4


def test_add_items_from_text_alone(cold_dataset, cfg):
    live = FusedRetriever.build(cold_dataset, cfg, embedder=HashingEmbedder(),
                                seq_config=tiny_config("sasrec"))
    new = Item("new-horror", title="Horror ghost haunted scream 42", genres=("horror",))
    live.add_items([new])
    assert "new-horror" in live.index and live.items["new-horror"].title.startswith("Horror")
    hist = [item_id(2, p) for p in (1, 2, 3)]
    top = [c.item_id for c in live.retrieve(history=hist, k=12)]
    assert "new-horror" in top
    only_new = live.retrieve(history=hist, k=3, filters=Filters(allow=frozenset({"new-horror"})))
    assert [c.item_id for c in only_new] == ["new-horror"]
    after = live.retrieve(history=[*hist, "new-horror"], k=3)  # a new item inside a history
    assert "new-horror" not in {c.item_id for c in after}
    assert live.remove_items(["new-horror"]) == 1 and "new-horror" not in live.index


def test_hard_negatives_never_hold_target_or_history(fused):
    hist = [item_id(3, p) for p in (2, 3, 4)]
    negs = fused.hard_negatives(hist, 8, exclude={item_id(3, 5)})
    assert len(negs) == 8 and item_id(3, 5) not in negs and not set(negs) & set(hist)


def test_fused_save_load_round_trip(fused, tmp_path):
    manifest = save_retriever(fused, tmp_path / "fused")
    assert manifest.kind == "fused" and manifest.embedder is not None
    assert manifest.embedder.backend == "hashing" and manifest.settings["kappa"] == fused.kappa
    loaded = load_retriever(tmp_path / "fused", embedder=HashingEmbedder())
    assert isinstance(loaded, FusedRetriever)
    hists = [[item_id(0, 0), item_id(0, 1)], [COLD[1], item_id(2, 8)]]
    assert loaded.retrieve_many(hists, k=8) == fused.retrieve_many(hists, k=8)
    assert loaded.retrieve(text="cowboy", k=4) == fused.retrieve(text="cowboy", k=4)
    assert retrievers.get("fused") is FusedRetriever


def test_blend_is_tuned_on_validation(fused):
    grid = fused.report["valid_ndcg10_grid"]
    assert len(grid) == len(FusionConfig().kappas) * len(FusionConfig().text_weights)
    assert fused.report["valid_ndcg10"] == pytest.approx(max(grid.values()))
    assert fused.kappa == fused.report["kappa"] and fused.text_weight == fused.report["text_weight"]


def test_text_takes_over_when_behaviour_is_uninformative(cold_dataset, cfg):
    """With an untrained sequential model (0 epochs) the only signal is the text (genre):
    validation must pick a positive text weight, and genre items must come first."""
    untrained = FusedRetriever.build(cold_dataset, cfg, embedder=HashingEmbedder(),
                                     seq_config=tiny_config("sasrec", epochs=0))
    assert untrained.text_weight > 0
    hist = [item_id(3, p) for p in (0, 1, 2)]
    top = [c.item_id for c in untrained.retrieve(history=hist, k=5)]
    assert all(t.startswith("g3") for t in top)


PLACED = FusionConfig(kappa=1.0, text_weight=1.0, ridge=1.0, cold_scale=2.0, cold_offset=1.0,
                      cold_text_scale=3.0)


@pytest.fixture(scope="module")
def placed(fused, cold_dataset, cfg):
    """The fixture's model, fused with a fixed non-identity cold placement."""
    return FusedRetriever.build(cold_dataset, cfg, embedder=HashingEmbedder(), model=fused.model,
                                fusion=PLACED)


def test_cold_placement_is_folded_into_the_index_rows(placed, cold_dataset, cfg):
    plain = FusedRetriever.build(cold_dataset, cfg, embedder=HashingEmbedder(),
                                 model=placed.model,
                                 fusion=FusionConfig(kappa=1.0, text_weight=1.0, ridge=1.0,
                                                     pseudo_cold=0.0))
    c = placed.cold
    assert c.scale == 2.0 and c.text_scale == 3.0 and c.offset != 0.0
    assert placed.manifest().settings["cold"] == c.to_dict()
    hidden = placed.model.config.hidden
    a, b = placed.index.reconstruct([COLD[0]])[0], plain.index.reconstruct([COLD[0]])[0]
    np.testing.assert_allclose(a[:hidden], 2.0 * b[:hidden], rtol=1e-5, atol=1e-6)
    assert a[hidden] == pytest.approx(b[hidden] + c.offset, abs=1e-5)
    np.testing.assert_allclose(a[hidden + 1:], 3.0 * b[hidden + 1:], rtol=1e-5, atol=1e-6)
    # a history holding cold items is read back as the plain projection and text: same query
    hists = [[item_id(0, 1), COLD[0], item_id(0, 4)], [COLD[1], item_id(2, 8)]]
    np.testing.assert_allclose(placed.query_vectors(hists), plain.query_vectors(hists),
                               rtol=1e-4, atol=1e-5)


def test_live_added_item_gets_the_built_row(placed, cold_dataset):
    row = placed.index.reconstruct([COLD[0]])
    hists = [[item_id(0, 0), item_id(0, 1), item_id(0, 2)], [COLD[1], item_id(2, 8)]]
    before = placed.retrieve_many(hists, k=10)
    assert placed.remove_items([COLD[0]]) == 1
    placed.add_items([cold_dataset.items[COLD[0]]])
    np.testing.assert_array_equal(placed.index.reconstruct([COLD[0]]), row)
    assert placed.retrieve_many(hists, k=10) == before


def test_cold_placement_survives_save_load_and_old_indexes_load(placed, tmp_path):
    import json

    save_retriever(placed, tmp_path / "placed")
    loaded = load_retriever(tmp_path / "placed", embedder=HashingEmbedder())
    assert isinstance(loaded, FusedRetriever) and loaded.cold == placed.cold
    hists = [[item_id(0, 1), COLD[0]], [COLD[1], item_id(2, 8)]]
    assert loaded.retrieve_many(hists, k=8) == placed.retrieve_many(hists, k=8)
    state_path = tmp_path / "placed" / "fusion.json"
    state = json.loads(state_path.read_text())
    del state["cold"]  # as written before cold placement existed
    state_path.write_text(json.dumps(state))
    old = load_retriever(tmp_path / "placed", embedder=HashingEmbedder())
    assert isinstance(old, FusedRetriever) and old.cold == ColdPlacement()


def test_refit_tunes_the_blend_before_refitting(fused, cold_dataset, cfg):
    """The blend is tuned on the early-stopped model, exactly as without refit; the refitted
    model (which trained on the tuning targets) only gets it afterwards."""
    refit = FusedRetriever.build(cold_dataset, cfg, embedder=HashingEmbedder(),
                                 seq_config=tiny_config("sasrec", refit=True))
    assert refit.report["refit"] is True
    assert refit.report["valid_ndcg10_grid"] == fused.report["valid_ndcg10_grid"]
    assert (refit.kappa, refit.text_weight) == (fused.kappa, fused.text_weight)
    meta = refit.model.meta
    assert meta["refit"] and meta["refit_epochs"] == fused.model.meta["best_epoch"]
    assert not np.allclose(refit.model.item_vectors(), fused.model.item_vectors())
    assert [c.item_id for c in refit.retrieve(history=[item_id(1, p) for p in (0, 1, 2)], k=1)] \
        == [item_id(1, 3)]


def test_loaded_fused_index_refuses_another_text_model(fused, tmp_path):
    """Text queries and added items must be embedded by the model that made the index's text
    vectors: another model of the same dim would silently score garbage."""
    save_retriever(fused, tmp_path / "fused")
    wrong = load_retriever(tmp_path / "fused", embedder=OtherModelEmbedder())
    with pytest.raises(IndexError_, match="another-256d-model"):
        wrong.retrieve(text="cowboy", k=4)
    with pytest.raises(IndexError_, match="another-256d-model"):
        wrong.add_items([Item("new", "cowboy desert", 2000, ("western",))])
    assert len(wrong.retrieve(history=[item_id(0, 0)], k=4)) == 4  # histories need no model


def test_free_text_queries_are_not_written_to_the_embedding_cache(fused, tmp_path):
    """The disk cache holds catalog items; a user's free-text queries must not pile up in it
    (the text retriever already bypasses it)."""
    from llmrank.embed.cache import CachedEmbedder

    cached = CachedEmbedder(HashingEmbedder(), tmp_path / "cache")
    fused._embedder, before = cached, fused._embedder
    try:
        assert len(fused.retrieve(text="a private query about cowboys", k=3)) == 3
        assert len(cached.cache) == 0
    finally:
        fused._embedder = before


def test_a_dataset_without_validation_users_still_gives_finite_rows(cfg):
    """Every history shorter than 3 items: nothing to tune on. The cold placement's offset
    was centred on the mean over zero validation users (NaN), and 0 * NaN made every index
    row NaN, warm items included: retrieval returned nothing at all."""
    short = cyclic_dataset(min_len=2, max_len=2, cold=COLD)
    assert max(len(h) for h in short.histories()) < 3
    built = FusedRetriever.build(short, cfg, embedder=HashingEmbedder(),
                                 seq_config=tiny_config("sasrec", epochs=2))
    rows = built.index.reconstruct(built.index.ids())
    assert np.isfinite(rows).all()
    assert built.cold == ColdPlacement() and not built.report["cold"]["tuned"]
    assert len(built.retrieve(history=[item_id(1, 2)], k=5)) == 5
    assert len(built.retrieve(history=[COLD[0]], k=5)) == 5


def test_a_fused_index_built_with_a_given_embedder_reloads_that_embedder(fused, cold_dataset,
                                                                          cfg, tmp_path):
    """``build(embedder=...)`` recorded the config's embedder model ('default', a 256-d
    hashing one here), not the one that made the text vectors: the reloaded index refused
    every text query and added item until the caller found and passed the right embedder
    (the text retriever records the given embedder)."""
    built = FusedRetriever.build(cold_dataset, cfg, embedder=HashingEmbedder(dim=64),
                                 model=fused.model, fusion=PLACED)
    save_retriever(built, tmp_path / "fused64")
    loaded = load_retriever(tmp_path / "fused64")  # no embedder passed: the manifest's
    assert loaded.retrieve(text="cowboy", k=4) == built.retrieve(text="cowboy", k=4)
    loaded.add_items([Item("new", "ghost haunted scream", 2000, ("horror",))])
    assert "new" in loaded.index


class _ShortTextEmbedder(HashingEmbedder):
    """The default hashing model under options that change its vectors (as a
    sentence-transformers max_seq_length does): the same model id, other vectors."""

    options = "max_seq_length=2"

    def encode(self, texts, **kwargs):
        return super().encode([" ".join(t.split()[:2]) for t in texts], **kwargs)


def test_a_loaded_fused_index_refuses_the_same_model_under_other_options(fused, cold_dataset,
                                                                          cfg, tmp_path):
    """Only the model id was compared: text embedded with other options (a truncating
    max_seq_length) was silently scored against the index's text vectors. The text
    retriever refuses it."""
    built = FusedRetriever.build(cold_dataset, cfg, embedder=_ShortTextEmbedder(),
                                 model=fused.model, fusion=PLACED)
    save_retriever(built, tmp_path / "short")
    assert read_manifest(tmp_path / "short").embedder.options == "max_seq_length=2"
    plain = load_retriever(tmp_path / "short", embedder=HashingEmbedder())
    with pytest.raises(IndexError_, match="max_seq_length=2"):
        plain.retrieve(text="cowboy sheriff desert", k=4)
    with pytest.raises(IndexError_, match="max_seq_length=2"):
        plain.add_items([Item("new", "ghost haunted scream", 2000, ("horror",))])
    same = load_retriever(tmp_path / "short", embedder=_ShortTextEmbedder())
    query = "cowboy sheriff desert"
    assert same.retrieve(text=query, k=4) == built.retrieve(text=query, k=4)
    import json

    state_path = tmp_path / "short" / "fusion.json"
    state = json.loads(state_path.read_text())
    del state["text_options"]  # as saved before options were recorded: not known, not refused
    state_path.write_text(json.dumps(state))
    old = load_retriever(tmp_path / "short", embedder=_ShortTextEmbedder())
    assert old.retrieve(text=query, k=4) == built.retrieve(text=query, k=4)
