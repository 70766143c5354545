"""Property-style parity of the transformers backend: label log-probs and greedy generations
must not depend on how prompts are grouped (alone, in a left-padded batch of mixed lengths,
with shared-prefix KV reuse or without, batch_size 1 or 8), for llama and qwen2 models and
with a LoRA adapter active or disabled. Random prompt sets are seeded and small (fast)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from llmrank.llm.base import GenerationConfig

LABELS = [" A", " B", " C", " D"]
WORDS = ["Toy", "Story", "Heat", "user", "history", "Comedy", "Drama", "Candidates:", "A.", "B.",
         "(1995).", "genres", "which", "next?", "recommender", "the", "with", "one", "letter."]


def random_prompts(seed: int, n: int = 10) -> list[str]:
    """Prompts of mixed lengths, most sharing a long head (as a request's permutations do)."""
    rng = random.Random(seed)
    heads = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 30))) for _ in range(2)]
    out = []
    for _ in range(n):
        tail = " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 25)))
        head = rng.choice(heads) if rng.random() < 0.8 else ""
        out.append((head + " " + tail).strip() + " Answer:")
    return out


@pytest.fixture(scope="module", params=["llama", "qwen2"])
def arch_llm(request, tmp_path_factory):
    from llmrank.llm.tiny import build_tiny_model
    from llmrank.llm.transformers_backend import TransformersLLM

    path = build_tiny_model(tmp_path_factory.mktemp(request.param), arch=request.param, seed=3)
    llm = TransformersLLM(str(path), batch_size=8)
    llm.model_dir = path  # type: ignore[attr-defined]
    return llm


def _score(llm, prompts, *, reuse: bool, batch_size: int) -> np.ndarray:
    llm.prefix_reuse, llm.batch_size = reuse, batch_size
    try:
        return llm.label_logprobs(prompts, LABELS)
    finally:
        llm.prefix_reuse, llm.batch_size = None, 8


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_label_logprobs_do_not_depend_on_grouping(arch_llm, seed):
    prompts = random_prompts(seed)
    alone = np.stack([_score(arch_llm, [p], reuse=False, batch_size=1)[0] for p in prompts])
    assert np.all(np.isfinite(alone)) and np.all(alone < 0)
    for reuse in (False, True):
        for bs in (1, 3, 8):
            got = _score(arch_llm, prompts, reuse=reuse, batch_size=bs)
            np.testing.assert_allclose(got, alone, atol=1e-4, err_msg=f"reuse={reuse} bs={bs}")


def test_label_logprobs_parity_with_lora_active_and_disabled(arch_llm, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(5)
    get_peft_model(AutoModelForCausalLM.from_pretrained(arch_llm.model_dir),
                   LoraConfig(r=4, target_modules=["q_proj", "v_proj", "o_proj"],
                              init_lora_weights=False)).save_pretrained(tmp_path / "ad")
    prompts = random_prompts(7)
    base = np.stack([_score(arch_llm, [p], reuse=False, batch_size=1)[0] for p in prompts])
    name = arch_llm.load_adapter(str(tmp_path / "ad"))
    try:
        tuned = np.stack([_score(arch_llm, [p], reuse=False, batch_size=1)[0] for p in prompts])
        assert not np.allclose(tuned, base, atol=1e-3)
        for reuse in (False, True):
            np.testing.assert_allclose(_score(arch_llm, prompts, reuse=reuse, batch_size=8), tuned,
                                       atol=1e-4)
        arch_llm.set_adapter(None)
        for reuse in (False, True):
            np.testing.assert_allclose(_score(arch_llm, prompts, reuse=reuse, batch_size=8), base,
                                       atol=1e-4)
        arch_llm.set_adapter(name)
    finally:
        arch_llm.set_adapter(None)


@pytest.mark.parametrize("seed", [0, 1])
def test_greedy_generation_batched_equals_alone(arch_llm, seed):
    prompts = random_prompts(seed, n=6)
    cfg = GenerationConfig(max_new_tokens=7)
    alone = []
    for p in prompts:
        alone.append(arch_llm.generate([p], cfg)[0])
        assert arch_llm.last_stats["new_tokens"] <= 7
    for bs in (1, 4, 8):
        arch_llm.batch_size = bs
        try:
            assert arch_llm.generate(prompts, cfg) == alone, bs
        finally:
            arch_llm.batch_size = 8


def test_prompts_over_the_bound_are_refused_not_truncated(arch_llm):
    from llmrank.errors import PromptError

    prompts = random_prompts(4)
    longest = max(prompts, key=arch_llm.count_tokens)
    n = arch_llm.count_tokens(longest)
    old = arch_llm._max_prompt
    arch_llm._max_prompt = n - 1
    try:
        for reuse in (False, True):
            with pytest.raises(PromptError, match="exceeds"):
                _score(arch_llm, prompts, reuse=reuse, batch_size=8)
        with pytest.raises(PromptError, match="exceeds"):
            arch_llm.generate(prompts, GenerationConfig(max_new_tokens=2))
        arch_llm._max_prompt = n
        assert _score(arch_llm, [longest], reuse=False, batch_size=1).shape == (1, 4)
    finally:
        arch_llm._max_prompt = old


def _greedy_tokens(llm, prompts, n):
    cfg = GenerationConfig(max_new_tokens=n)
    texts = [llm.generate([p], cfg)[0] for p in prompts]
    return texts, [llm.encode(t) for t in texts]


@pytest.mark.parametrize("seed", [0, 3])
def test_multi_token_stops_cut_before_the_stop_batched_and_alone(arch_llm, seed):
    """A stop string spanning several tokens ends the text right before it, whether the row
    decodes alone or next to others; the decode stops there (no tokens wasted past it)."""
    prompts = random_prompts(seed, n=5)
    texts, _ = _greedy_tokens(arch_llm, prompts, 12)
    rng = random.Random(seed)
    for text in texts:
        if len(text) < 6:
            continue
        start = rng.randint(1, len(text) - 4)
        stop = text[start: start + 3]
        cfg = GenerationConfig(max_new_tokens=12, stop=(stop,))
        expected = text[: text.index(stop)]
        assert arch_llm.generate([prompts[texts.index(text)]], cfg)[0] == expected
        together = arch_llm.generate(prompts, cfg)
        for p, t, got in zip(prompts, texts, together, strict=True):
            assert got == (t[: t.index(stop)] if stop in t else t), p


def test_rows_ending_at_eos_leave_the_others_unchanged(arch_llm, monkeypatch):
    prompts = random_prompts(5, n=6)
    from llmrank.llm.hf_decode import decode_batch

    cfg = GenerationConfig(max_new_tokens=8)
    with arch_llm._adapter_context():  # an earlier test may have left a (disabled) LoRA
        toks = [decode_batch(arch_llm.model, arch_llm.tokenizer, [arch_llm.encode(p)], cfg,
                             arch_llm.device, eos_ids=[], pad_id=0)[0] for p in prompts]
    full = [arch_llm.generate([p], cfg)[0] for p in prompts]
    row = next(i for i, t in enumerate(toks) if len(set(t[2:])) > 1 and t[2] not in t[:2])
    eos = toks[row][2]  # a token one row emits early: treat it as EOS
    monkeypatch.setattr(arch_llm, "_eos_ids", lambda: [eos])
    alone = [arch_llm.generate([p], cfg)[0] for p in prompts]
    assert alone[row] == arch_llm.tokenizer.decode(toks[row][:2]) != full[row]
    assert arch_llm.generate(prompts, cfg) == alone


def test_decode_threads_restored_after_generate(arch_llm):
    import torch

    before = torch.get_num_threads()
    arch_llm.generate(random_prompts(1, n=2), GenerationConfig(max_new_tokens=3))
    assert torch.get_num_threads() == before
