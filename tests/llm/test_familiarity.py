"""Title familiarity: batched scores equal one-at-a-time scores, the cache is keyed by what
was scored, and the real default model knows a famous title better than an invented one."""

from __future__ import annotations

import numpy as np
import pytest

from llmrank.errors import ModelError
from llmrank.llm.familiarity import DEFAULT_CONTEXT, cached_familiarity, text_familiarity

TITLES = ["Toy Story (1995)", "Heat (1995)", "A", "Comedy Drama Action (2001)",
          "The user's history, oldest first", "Heat"]


def _one_at_a_time(llm, text: str, ctx: list[int] | None = None) -> float:
    """Reference: no batch, no padding, the same definition written out."""
    import torch

    ctx = ctx if ctx is not None else llm.tokenizer(DEFAULT_CONTEXT, add_special_tokens=False).input_ids
    toks = llm.tokenizer(" " + text, add_special_tokens=False).input_ids
    # the base model as the backend serves it: the session's tiny_llm may hold a disabled LoRA
    with torch.inference_mode(), llm._adapter_context():
        logits = llm.model(input_ids=torch.tensor([ctx + toks])).logits[0].float()
    logp = torch.log_softmax(logits, dim=-1)
    return float(np.mean([float(logp[len(ctx) - 1 + j, t]) for j, t in enumerate(toks)]))


def test_batched_scores_equal_unbatched_reference(tiny_llm):
    got = text_familiarity(tiny_llm, TITLES, batch_size=4)  # mixed lengths in one batch: padding
    want = np.array([_one_at_a_time(tiny_llm, t) for t in TITLES])
    np.testing.assert_allclose(got, want, atol=1e-4)
    assert got.shape == (len(TITLES),) and np.isfinite(got).all()


def test_an_empty_context_starts_from_the_begin_of_text_token(tiny_llm):
    """With no context the first title token has nothing to be predicted from: it used to be
    read at position -1 (the padded end of the row, garbage); it is predicted from BOS."""
    got = text_familiarity(tiny_llm, TITLES, context="", batch_size=4)
    want = np.array([_one_at_a_time(tiny_llm, t, ctx=[tiny_llm.tokenizer.bos_token_id]) for t in TITLES])
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_scores_follow_their_texts_whatever_the_order(tiny_llm):
    base = text_familiarity(tiny_llm, TITLES, batch_size=2)
    perm = np.random.default_rng(0).permutation(len(TITLES))
    shuffled = text_familiarity(tiny_llm, [TITLES[i] for i in perm], batch_size=3)
    np.testing.assert_allclose(shuffled, base[perm], atol=1e-4)


def test_backend_without_a_model_is_a_clear_error():
    from llmrank.llm.fake import FakeLLM

    with pytest.raises(ModelError, match="transformers"):
        text_familiarity(FakeLLM(), TITLES)


def test_cache_is_reused_and_keyed_by_the_texts(tiny_llm, tmp_path):
    first = cached_familiarity(tiny_llm, TITLES, tmp_path, model_id="tiny")
    assert len(list(tmp_path.glob("familiarity-*.npy"))) == 1

    class Broken:  # a second call with the same texts must not touch the model
        model = tokenizer = None

    np.testing.assert_array_equal(cached_familiarity(Broken(), TITLES, tmp_path, model_id="tiny"), first)
    with pytest.raises(ModelError):  # other texts: a new key, so the model is needed again
        cached_familiarity(Broken(), TITLES[:-1], tmp_path, model_id="tiny")


def test_familiarity_prior_scores_every_item_the_same_for_every_user(tiny_llm, synth, tmp_path):
    from llmrank.explore.priors import FamiliarityPrior

    prior = FamiliarityPrior(llm=tiny_llm, cache_dir=str(tmp_path), batch_size=64)
    prior.fit(synth, [np.zeros(0, np.int64)] * synth.n_users)
    full = prior.score(0, np.array([1, 2]), None)
    assert full.shape == (synth.n_items,) and np.isfinite(full).all()
    cands = np.array([5, 3, 9])
    np.testing.assert_array_equal(prior.score(7, np.array([4]), cands), full[cands])


def test_simulate_config_builds_knn_then_familiarity():
    from llmrank.explore.priors import FamiliarityPrior, ItemKNNPrior, TwoStagePrior
    from llmrank.explore.simulate import PriorConfig, make_prior

    prior = make_prior(PriorConfig(kind="itemknn>familiarity",
                                   options={"neighbors": 50, "n": 80, "cache_dir": "x"}))
    assert isinstance(prior, TwoStagePrior) and prior.n == 80
    assert isinstance(prior.retrieve, ItemKNNPrior) and prior.retrieve.neighbors == 50
    assert isinstance(prior.rerank, FamiliarityPrior) and prior.rerank.cache_dir == "x"
    plain = make_prior(PriorConfig(kind="familiarity", options={"model": "m", "batch_size": 8}))
    assert isinstance(plain, FamiliarityPrior) and plain.model == "m" and plain.batch_size == 8


@pytest.mark.slow
def test_default_model_knows_famous_titles_better_than_invented_ones(monkeypatch):
    monkeypatch.delenv("LLMRANK_HOME", raising=False)  # reuse the converted default model
    from llmrank.llm.transformers_backend import TransformersLLM

    llm = TransformersLLM("default", threads=1)
    famous = ["Toy Story (1995)", "The Godfather (1972)", "Star Wars (1977)", "Titanic (1997)"]
    invented = ["Glorvan Thistlepock (1995)", "The Quimbly Vexations (1972)",
                "Snarp Holloway Nine (1977)", "Vendrick of Ulm (1997)"]
    scores = text_familiarity(llm, famous + invented)
    assert scores[:4].min() > scores[4:].max(), scores


def test_config_default_context_is_the_library_default():
    from llmrank.config import PolicyConfig

    assert PolicyConfig().prior_context == DEFAULT_CONTEXT


def test_an_inactive_adapter_does_not_change_the_scores(tiny_model_dir, tmp_path):
    """A loaded LoRA adapter counts only while it is the active one."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from llmrank.llm.transformers_backend import TransformersLLM

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)),
                           LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.5)
    model.save_pretrained(tmp_path / "lora")
    llm = TransformersLLM(str(tiny_model_dir), adapter=str(tmp_path / "lora"))
    tuned = text_familiarity(llm, TITLES)
    llm.set_adapter(None)
    base = text_familiarity(llm, TITLES)
    plain = text_familiarity(TransformersLLM(str(tiny_model_dir)), TITLES)
    np.testing.assert_allclose(base, plain, atol=1e-5)
    assert np.abs(tuned - base).max() > 1e-3
