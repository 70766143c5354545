"""Helpers of eval/gpu_check.py: the model to time, the rank prompts, a random LoRA adapter,
prefill FLOP counts and score comparisons (kept apart so the check itself stays short)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("gpu_check")
SMOLLM2_DIMS: dict[str, Any] = {"hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
                                "num_attention_heads": 9, "num_key_value_heads": 3, "vocab_size": 49152}


# ---- model and prompts -------------------------------------------------------------------
def pick_model(name: str, work: Path) -> tuple[str, str]:
    """(path, what it is). 'default' falls back to random SmolLM2-shaped weights when the
    converted model is not on this machine (it is too large to carry to a lent GPU)."""
    from llmrank.errors import ModelError
    from llmrank.models.resolve import resolve_model

    if name == "tiny":
        from llmrank.llm.tiny import tiny_model

        return str(tiny_model("llama")), "tiny random llama (2 layers)"
    if name == "default":
        try:
            return resolve_model("default"), "SmolLM2-135M-Instruct (default)"
        except ModelError as exc:
            log.warning("default model unavailable (%s); using random SmolLM2-shaped weights", exc)
            name = "random-smollm2"
    if name == "random-smollm2":
        return str(random_smollm2(work / "random-smollm2")), "random weights, SmolLM2-135M shape, tiny BPE tokenizer"
    return resolve_model(name), name


def random_smollm2(dest: Path) -> Path:
    """SmolLM2-135M's architecture with random weights and the tiny BPE tokenizer: the same
    FLOPs per token as the real model, built offline in seconds."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    from llmrank.llm.tiny import build_tokenizer

    build_tokenizer(dest)
    cfg = LlamaConfig(**SMOLLM2_DIMS, head_dim=64, max_position_embeddings=8192, tie_word_embeddings=True,
                      bos_token_id=1, eos_token_id=2, pad_token_id=2)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    model.save_pretrained(dest, safe_serialization=True)
    return dest


def rank_prompts(llm: Any, n: int, skip: int = 0) -> list[Any]:
    """20-candidate rank prompts (target + 19 seeded negatives) for synthetic catalog users."""
    from llmrank.data.candidates import random_candidates
    from llmrank.data.demo_catalog import load_catalog
    from llmrank.data.splits import LeaveOneOut
    from llmrank.rerank.prompt import RankPromptBuilder

    ds = load_catalog(n_users=max(300, skip + n))
    split = LeaveOneOut.from_dataset(ds)
    builder = RankPromptBuilder(llm, max_history=20)
    out = []
    for u in split.eval_users()[skip: skip + n]:
        seen = split.seen(int(u), "test")
        cands = random_candidates(ds.n_items, split.target(int(u), "test"), seen, seed=0, user=int(u))
        out.append(builder.build([ds.item(ds.item_ids[c]) for c in seen],
                                 [ds.item(ds.item_ids[c]) for c in cands]))
    return out


def random_lora(model_path: str, dest: Path) -> Path:
    """A rank-8 LoRA with random non-zero B (peft starts B at zero, which changes nothing)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32),
                           LoraConfig(r=8, lora_alpha=16, task_type="CAUSAL_LM",
                                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.02)
    model.save_pretrained(str(dest))
    return dest


# ---- FLOPs and comparisons ---------------------------------------------------------------
def prefill_flops(config: Any, lengths: list[int], cached: int = 0) -> float:
    """Forward FLOPs of prefilling prompts of ``lengths`` tokens (matmuls + causal attention,
    one lm_head row per prompt), minus ``cached`` prefix tokens per prompt after the first."""
    d = config.hidden_size
    heads = config.num_attention_heads
    hd = getattr(config, "head_dim", None) or d // heads
    kv = getattr(config, "num_key_value_heads", heads)
    per_token = 2 * config.num_hidden_layers * (d * heads * hd * 2 + 2 * d * kv * hd + 3 * d * config.intermediate_size)
    attn = sum(2 * config.num_hidden_layers * heads * hd * L * L for L in lengths)
    tokens = sum(lengths) - cached * max(0, len(lengths) - 1)
    return float(per_token * tokens + attn + 2 * d * config.vocab_size * len(lengths))


def shared_prefix_tokens(rows: list[list[int]], block: int = 16) -> int:
    """Tokens every prompt shares at its start, in whole KV blocks (what prefix caching reuses)."""
    if len(rows) < 2:
        return 0
    n = min(len(r) for r in rows)
    i = 0
    while i < n and all(r[i] == rows[0][i] for r in rows):
        i += 1
    return (i // block) * block


def compare(ref: np.ndarray, other: np.ndarray, margin: float = 0.05) -> dict[str, float]:
    from llmrank.rerank.scorer import renormalise

    r, o = renormalise(ref), renormalise(other)
    diff = r[:, :, None] - r[:, None, :]
    pairs = np.abs(diff) > margin
    agree = np.sign(diff) == np.sign(o[:, :, None] - o[:, None, :])
    return {"max_abs_renorm": float(np.abs(r - o).max()), "mean_abs_renorm": float(np.abs(r - o).mean()),
            "argmax_agree": float(np.mean(r.argmax(1) == o.argmax(1))),
            "pair_agree": float(agree[pairs].mean()) if pairs.any() else 1.0}
