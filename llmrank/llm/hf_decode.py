"""Batched decoding for the transformers backend, written out instead of ``model.generate``.

Why not ``generate``: explanations for the shown items of one user share their prompt up to
the item (system prompt, history), so the shared part is prefilled once (kv_reuse) and its
cache repeated per row; each row stops on its own at EOS or a stop string, and the loop ends
as soon as every row has stopped. Decoding on a CPU is bound by reading the weights once per
step, so all rows of a batch advance together for about the price of one."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from llmrank.llm.base import GenerationConfig
from llmrank.llm.cpu_threads import decode_threads
from llmrank.llm.kv_reuse import prefill_shared


@dataclass
class DecodeStats:
    prefill_positions: int = 0  # token positions run in prefill (padding included)
    steps: int = 0  # decode forward passes after the prefill
    new_tokens: int = 0  # tokens kept in the outputs


def _pick(logits: torch.Tensor, config: GenerationConfig, gen: torch.Generator | None) -> torch.Tensor:
    """Greedy argmax, or temperature + nucleus (top-p) sampling from a seeded generator."""
    if config.temperature <= 0 or gen is None:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits / config.temperature, dim=-1)
    if config.top_p < 1.0:
        sorted_p, idx = probs.sort(dim=-1, descending=True)
        drop = sorted_p.cumsum(dim=-1) - sorted_p > config.top_p  # keep the first token always
        sorted_p = sorted_p.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, idx, sorted_p)
    return torch.multinomial(probs.cpu(), 1, generator=gen).squeeze(-1).to(logits.device)


def _stopped(text: str, stop: Sequence[str]) -> bool:
    return any(s and s in text for s in stop)


@torch.inference_mode()
def decode_batch(model: Any, tokenizer: Any, prompts: Sequence[Sequence[int]], config: GenerationConfig,
                 device: torch.device, *, eos_ids: Sequence[int], pad_id: int,
                 stats: DecodeStats | None = None, budgets: Sequence[int] | None = None) -> list[list[int]]:
    """New token ids per prompt (EOS excluded; text past a stop string is cut by the caller).
    ``budgets`` caps the new tokens of each row (the room its context leaves)."""
    batch = len(prompts)
    logits, mask, cache, positions = prefill_shared(model, prompts, device, pad_id)
    next_pos = mask.sum(dim=1)  # positions are contiguous over real tokens
    gen = torch.Generator().manual_seed(config.seed) if config.temperature > 0 else None
    out: list[list[int]] = [[] for _ in range(batch)]
    done = [False] * batch
    eos = set(eos_ids)
    steps = 0
    with decode_threads(torch.device(device).type):  # prefill above used every thread
        for step in range(config.max_new_tokens):
            chosen = _pick(logits, config, gen)
            for row, tok in enumerate(chosen.tolist()):
                if done[row]:
                    continue
                if tok in eos:
                    done[row] = True
                    continue
                out[row].append(int(tok))
                spent = budgets is not None and len(out[row]) >= budgets[row]
                if spent or (config.stop and _stopped(tokenizer.decode(out[row], skip_special_tokens=True),
                                                      config.stop)):
                    done[row] = True
            if all(done) or step == config.max_new_tokens - 1:
                break
            feed = torch.tensor([pad_id if d else int(t) for d, t in zip(done, chosen.tolist(), strict=True)],
                                dtype=torch.long)
            mask = torch.cat([mask, torch.ones((batch, 1), dtype=mask.dtype)], dim=1)
            # a finished row's pad goes to position 0: its output is dropped, and its own next
            # position may lie past the model's context (its budget was that room)
            live = torch.tensor([not d for d in done])
            res = model(input_ids=feed.unsqueeze(1).to(device), attention_mask=mask.to(device),
                        position_ids=(next_pos * live).unsqueeze(1).to(device), past_key_values=cache,
                        use_cache=True)
            next_pos = next_pos + 1
            cache = res.past_key_values
            logits = res.logits[:, -1, :].float()
            steps += 1
    if stats is not None:
        stats.prefill_positions += positions
        stats.steps += steps
        stats.new_tokens += sum(len(o) for o in out)
    return out
