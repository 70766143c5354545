"""Shared-prefix KV reuse must change time, never results: scores and generations equal
those of plain full-prompt passes (float tolerance), whatever the order and grouping."""

from __future__ import annotations

import numpy as np
import pytest

from llmrank.llm.base import GenerationConfig
from llmrank.llm.kv_reuse import common_prefix
from llmrank.prompts import ChatMessage

LABELS = [" A", " B", " C", " D"]


def _prompts(llm) -> list[str]:
    head = [ChatMessage("system", "You are a recommender system. " * 3)]
    hist = "The user's history, oldest first: Toy Story (1995). Heat (1995). " * 2
    out = []
    for tail in ("Candidates: A. B. C. D.", "Candidates: D. C. B. A.", "Candidates: B. A.", "Toy"):
        out.append(llm.format_chat([*head, ChatMessage("user", hist + tail)]) + "Answer:")
    out.append("short unrelated prompt Answer:")
    out.append(out[0])  # a duplicate: fully shared, still one token must run
    return out


@pytest.fixture()
def reuse_llm(tiny_llm):
    yield tiny_llm
    tiny_llm.prefix_reuse = None


def test_common_prefix():
    assert common_prefix([1, 2, 3], [1, 2, 4, 5]) == 2
    assert common_prefix([], [1]) == 0
    assert common_prefix([1, 2], [1, 2]) == 2


def test_reuse_scores_equal_padded_batches(reuse_llm):
    prompts = _prompts(reuse_llm)
    reuse_llm.prefix_reuse = False
    batched = reuse_llm.label_logprobs(prompts, LABELS)
    padded = reuse_llm.last_stats
    reuse_llm.prefix_reuse = True
    reused = reuse_llm.label_logprobs(prompts, LABELS)
    np.testing.assert_allclose(reused, batched, atol=1e-4)
    stats = reuse_llm.last_stats
    assert stats["prompt_tokens"] == padded["prompt_tokens"]
    assert stats["positions_run"] < stats["prompt_tokens"] <= padded["positions_run"]
    for i in (0, 3, 4):  # and each equals its own single-prompt pass
        np.testing.assert_allclose(reuse_llm.label_logprobs([prompts[i]], LABELS)[0], reused[i], atol=1e-4)


def test_generate_batch_equals_single_prompts(reuse_llm):
    prompts = _prompts(reuse_llm)[:4]
    cfg = GenerationConfig(max_new_tokens=8)
    together = reuse_llm.generate(prompts, cfg)
    assert reuse_llm.last_stats["positions_run"] < reuse_llm.last_stats["prompt_tokens"]
    alone = [reuse_llm.generate([p], cfg)[0] for p in prompts]
    assert together == alone


def test_generate_matches_transformers_greedy(reuse_llm):
    import torch

    prompt = _prompts(reuse_llm)[0]
    ids = torch.tensor([reuse_llm.encode(prompt)])
    with torch.inference_mode(), reuse_llm._adapter_context():  # a disabled LoRA stays off
        ref = reuse_llm.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=8,
                                       do_sample=False, pad_token_id=reuse_llm.tokenizer.pad_token_id)
    new = [int(t) for t in ref[0, ids.shape[1]:] if int(t) not in reuse_llm._eos_ids()]
    expected = reuse_llm.tokenizer.decode(new, skip_special_tokens=True)
    got = reuse_llm.generate([prompt], GenerationConfig(max_new_tokens=8))[0]
    assert expected.startswith(got)  # equal unless EOS came first (then the text is cut there)


def test_sampling_is_seeded_and_stop_strings_cut(reuse_llm):
    prompts = _prompts(reuse_llm)[:2]
    cfg = GenerationConfig(max_new_tokens=8, temperature=1.0, top_p=0.9, seed=3)
    assert reuse_llm.generate(prompts, cfg) == reuse_llm.generate(prompts, cfg)
    greedy = reuse_llm.generate(prompts[:1], GenerationConfig(max_new_tokens=8))[0]
    if len(greedy) > 2:
        stop = greedy[1:3]
        cut = reuse_llm.generate(prompts[:1], GenerationConfig(max_new_tokens=8, stop=(stop,)))[0]
        assert cut == greedy[: greedy.index(stop)]


def _sliding_window_llm(path):
    """A tiny qwen2 whose layers all attend to the last 12 positions only."""
    import json

    from llmrank.llm.tiny import build_tiny_model
    from llmrank.llm.transformers_backend import TransformersLLM

    build_tiny_model(path, arch="qwen2", seed=3)
    config = json.loads((path / "config.json").read_text())
    config.update(use_sliding_window=True, sliding_window=12, max_window_layers=0)
    config.pop("layer_types", None)
    (path / "config.json").write_text(json.dumps(config))
    llm = TransformersLLM(str(path), batch_size=8)
    assert set(llm.model.config.layer_types) == {"sliding_attention"}
    return llm


def test_sliding_window_model_scores_with_reuse_as_without(tmp_path):
    """A sliding-window model (qwen2 with use_sliding_window, as Mistral or Gemma are) keeps
    only the last window of keys/values per layer: its cache cannot be cropped back to a
    shared prefix once prompts outgrow the window. Reuse on (the CPU default) crashed with
    transformers' RuntimeError; such a cache is now recomputed per prompt, same scores."""
    llm = _sliding_window_llm(tmp_path)
    prompts = _prompts(llm)
    assert min(llm.count_tokens(p) for p in prompts) > 12
    llm.prefix_reuse = False
    padded = llm.label_logprobs(prompts, LABELS)
    llm.prefix_reuse = True
    np.testing.assert_allclose(llm.label_logprobs(prompts, LABELS), padded, atol=1e-4)


def test_sliding_window_model_generates_batched_as_alone(tmp_path):
    """The decode prefill put each row's padding between the shared prefix and its suffix; a
    sliding window counts cache positions, so a row's window held padding instead of its
    last real tokens (a short suffix after a long one: logits off by ~5 nats here). Such
    models now prefill with left padding only."""
    llm = _sliding_window_llm(tmp_path)
    head = "The user's history, oldest first: Toy Story (1995). Heat (1995). Genres: Comedy"
    prompts = [head + " A Answer:", head + " Drama, Action. Candidates: A. B. C. Which candidate Answer:",
               head + " B. Answer:"]
    assert min(common_prefix(llm.encode(prompts[0]), llm.encode(p)) for p in prompts) > 24
    cfg = GenerationConfig(max_new_tokens=8)
    alone = [llm.generate([p], cfg)[0] for p in prompts]
    assert llm.generate(prompts, cfg) == alone
