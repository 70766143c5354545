"""Score-averaging ensemble of sequential models: one inner product equals the weighted
mean of the members' scores, it survives save/load through ``SequentialModel.load`` and it
drives the sequential and fused retrievers (cold items from text included)."""

from __future__ import annotations

import numpy as np
import pytest
from _seq_fixtures import tiny_config

from llmrank.config import load_config
from llmrank.embed.hashing import HashingEmbedder
from llmrank.errors import ModelError
from llmrank.retrieve import load_retriever, save_retriever
from llmrank.retrieve.fused import FusedRetriever
from llmrank.retrieve.sequential.ensemble import EnsembleModel
from llmrank.retrieve.sequential.model import SequentialModel
from llmrank.retrieve.sequential.retriever import SequentialRetriever
from llmrank.retrieve.sequential.synthetic import cyclic_dataset, item_id
from llmrank.retrieve.sequential.train import holdout_split, train_sequential

COLD = (item_id(1, 4),)


@pytest.fixture(scope="module")
def dataset():
    return cyclic_dataset(cold=COLD)


@pytest.fixture(scope="module")
def members(dataset):
    split = holdout_split(dataset)
    lru = train_sequential(split, tiny_config("lru", epochs=3)).model
    sas = train_sequential(split, tiny_config("sasrec", epochs=3, hidden=8)).model
    return lru, sas


def test_scores_are_the_weighted_mean_of_member_scores(members):
    lru, sas = members
    ens = EnsembleModel([lru, sas], [0.7, 0.3])
    hists = [lru.codes([item_id(0, 1), item_id(0, 2)]), np.array([], np.int64)]
    expected = 0.7 * lru.scores(hists) + 0.3 * sas.scores(hists)
    np.testing.assert_allclose(ens.scores(hists), expected, rtol=1e-4, atol=1e-4)
    assert ens.dim == lru.config.hidden + sas.config.hidden + 1
    # fed its own input embeddings, the embedding path gives the same user vectors
    seqs = [ens.input_embeddings(h) for h in hists]
    np.testing.assert_allclose(ens.user_vectors_from_embeddings(seqs), ens.user_vectors(hists),
                               rtol=1e-4, atol=1e-5)


def test_members_must_share_items_and_weights_match(members):
    lru, _ = members
    with pytest.raises(ModelError):
        EnsembleModel([lru, lru], [1.0])
    with pytest.raises(ModelError):
        EnsembleModel([])


def test_save_load_through_sequential_model_load(members, tmp_path):
    ens = EnsembleModel(list(members))
    ens.save(tmp_path / "ens")
    loaded = SequentialModel.load(tmp_path / "ens", device="cpu")
    assert isinstance(loaded, EnsembleModel) and loaded.weights == ens.weights
    hists = [ens.codes([item_id(2, 3), item_id(2, 4)])]
    np.testing.assert_allclose(loaded.scores(hists), ens.scores(hists), rtol=1e-5, atol=1e-6)


def test_retrievers_run_on_an_ensemble(dataset, members, tmp_path):
    ens = EnsembleModel(list(members))
    seq = SequentialRetriever.from_model(ens, dataset.items)
    hist = [item_id(3, 1), item_id(3, 2)]
    assert not set(c.item_id for c in seq.retrieve(history=hist, k=5)) & set(hist)
    cfg = load_config({"embedder": {"backend": "hashing"}})
    fused = FusedRetriever.build(dataset, cfg, embedder=HashingEmbedder(), model=ens)
    assert COLD[0] in fused.index  # cold item placed by its text
    save_retriever(fused, tmp_path / "fused")
    loaded = load_retriever(tmp_path / "fused", embedder=HashingEmbedder())
    assert isinstance(loaded, FusedRetriever) and isinstance(loaded.model, EnsembleModel)
    hists = [hist, [COLD[0], item_id(1, 5)]]
    assert loaded.retrieve_many(hists, k=6) == fused.retrieve_many(hists, k=6)


def test_config_ensemble_trains_every_member(dataset):
    from llmrank.retrieve.sequential.ensemble import member_configs, train_model

    cfg = tiny_config("lru", epochs=1, ensemble=[{"model": "sasrec", "hidden": 8}],
                      ensemble_weights=[0.6, 0.4])
    configs = member_configs(cfg)
    assert [c.model for c in configs] == ["lru", "sasrec"] and configs[1].hidden == 8
    assert all(not c.ensemble for c in configs)
    model = train_model(holdout_split(dataset), cfg)
    assert isinstance(model, EnsembleModel) and model.weights == [0.6, 0.4]
    assert model.dim == 16 + 8 + 1
    single = train_model(holdout_split(dataset), tiny_config("lru", epochs=1))
    assert not isinstance(single, EnsembleModel)


def test_fused_default_is_two_seeds_of_lru_and_sasrec_unless_configured(dataset):
    tiny = {"hidden": 8, "layers": 1, "heads": 1, "max_len": 8, "epochs": 1, "device": "cpu"}
    cfg = load_config({"embedder": {"backend": "hashing"},
                       "retriever": {"options": {"sequential": tiny}}})
    fused = FusedRetriever.build(dataset, cfg, embedder=HashingEmbedder())
    assert isinstance(fused.model, EnsembleModel)
    members = [(m.config.model, m.config.seed) for m in fused.model.members]
    assert members == [("lru", 0), ("lru", 1), ("sasrec", 0), ("sasrec", 1)]
    assert fused.model.weights == [0.25] * 4
    single = load_config({"embedder": {"backend": "hashing"},
                          "retriever": {"options": {"sequential": {**tiny, "ensemble": []}}}})
    assert not isinstance(FusedRetriever.build(dataset, single, embedder=HashingEmbedder()).model,
                          EnsembleModel)


def test_member_settings_make_seed_twins_of_repeated_architectures():
    from llmrank.retrieve.sequential.config import default_fused_ensemble, member_settings

    got = member_settings(["sasrec", "lru", "sasrec"], "lru", seed=5)
    assert [(m["model"], m["seed"]) for m in got] == [("sasrec", 5), ("lru", 6), ("sasrec", 6)]
    assert got[0]["item_bias"] is False and got[0]["batch_size"] == 64  # SASRec's own settings
    assert got[1] == {"model": "lru", "seed": 6}  # a twin of the main model keeps its settings
    assert member_settings(["lru"], "sasrec")[0]["item_bias"] is True
    # a SASRec main model gets its twin and two LRURecs, not a copy of itself
    assert [(m["model"], m["seed"]) for m in default_fused_ensemble("sasrec", 0)] == [
        ("lru", 0), ("lru", 1), ("sasrec", 1)]


def test_refit_model_retrains_the_members_that_ask_for_it(members, dataset):
    """Ensemble refit (fused builds refit after tuning): each member whose config says
    ``refit`` is retrained for its own early-stopped epochs, the others are kept."""
    from dataclasses import replace

    from llmrank.retrieve.sequential.ensemble import refit_model, wants_refit, without_refit

    lru, sas = members
    config = replace(tiny_config("lru", epochs=3, refit=True),
                     ensemble=[{"model": "sasrec", "hidden": 8, "refit": False}])
    assert wants_refit(config) and not wants_refit(without_refit(config))
    ens = EnsembleModel([lru, sas], [0.6, 0.4], {"best_epoch": lru.meta["best_epoch"]})
    out = refit_model(holdout_split(dataset), config, ens)
    assert isinstance(out, EnsembleModel) and out.weights == [0.6, 0.4]
    assert out.members[1] is sas and out.members[0] is not lru
    assert out.members[0].meta["refit_epochs"] == lru.meta["best_epoch"] and out.meta["refit"]
    with pytest.raises(ModelError):
        refit_model(holdout_split(dataset), config, lru)


def test_overwriting_an_ensemble_folder_with_one_model_loads_that_model(dataset, members,
                                                                         tmp_path):
    """Retraining into the same index folder (the default --out) with --ensemble none: the
    old ensemble.json must not make load() return the previous ensemble."""
    lru, sas = members
    save_retriever(SequentialRetriever.from_model(EnsembleModel([lru, sas]), dataset.items),
                   tmp_path / "idx")
    single = SequentialRetriever.from_model(lru, dataset.items)
    save_retriever(single, tmp_path / "idx")
    loaded = load_retriever(tmp_path / "idx")
    assert not isinstance(loaded.model, EnsembleModel)
    hist = [item_id(3, 1), item_id(3, 2)]
    assert loaded.retrieve(history=hist, k=5) == single.retrieve(history=hist, k=5)


def test_a_model_trained_on_a_gpu_loads_on_a_cpu_machine(members, tmp_path, caplog, monkeypatch):
    """The saved config records the training device: a model trained with device = "cuda"
    failed to load where there is no GPU unless the caller passed a device."""
    import json

    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    lru, _ = members
    lru.save(tmp_path / "m")
    cfg_path = tmp_path / "m" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["device"] = "cuda:0"
    cfg_path.write_text(json.dumps(cfg))
    loaded = SequentialModel.load(tmp_path / "m")
    assert next(loaded.net.parameters()).device.type == "cpu"
    assert "no GPU here" in caplog.text
    hists = [lru.codes([item_id(0, 1), item_id(0, 2)])]
    np.testing.assert_allclose(loaded.scores(hists), lru.scores(hists), rtol=1e-5, atol=1e-6)
