"""Shared-prefix KV reuse for one-pass scoring and for prefill before decoding.

Why: rank prompts of one request share everything up to the candidate list (system prompt,
history), across permutations and tournament windows; explanation prompts of one user share
everything up to the recommended item. On a CPU the forward pass costs about the same per
token whatever the batch, so tokens not recomputed are time saved, and prompts scored one by
one carry no padding at all. Prompts are visited in token order, so each shares the longest
possible prefix with the one before; the cache of the previous prompt is cropped to that
prefix (keys/values at a position depend only on earlier tokens) and only the rest runs.

Reuse lives inside one call: a cache kept across calls would go stale when an adapter is
switched or when the weights are being trained (finetune validation scores a live model)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch

log = logging.getLogger(__name__)

MIN_REUSE = 8  # a shorter shared prefix is not worth a crop


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def _croppable(cache: Any) -> bool:
    """Whether ``cache`` can be cut back to a shared prefix. Not a cache with sliding-window
    layers (Mistral, Gemma, qwen2 with use_sliding_window): such a layer keeps only the last
    window of keys/values, so once a prompt outgrows the window the prefix is gone (transformers
    raises in ``crop``); those prompts are recomputed whole, with the same results."""
    ok = getattr(cache, "is_croppable", True)
    return bool(ok) and hasattr(cache, "crop") and not _sliding(cache)


def _sliding(cache: Any) -> bool:
    """Whether any layer of ``cache`` attends to a sliding window of cache positions."""
    return any(getattr(layer, "is_sliding", False) for layer in getattr(cache, "layers", ()))


def _crop_to(cache: Any, keep: int) -> None:
    """Keep the first ``keep`` positions. A negative argument (tokens to remove from the
    end) means the same thing in transformers 4.x and 5.x; a positive one does not."""
    remove = int(cache.get_seq_length()) - keep
    if remove > 0:
        cache.crop(-remove)


@torch.inference_mode()
def last_logits_with_reuse(model: Any, prompts: Sequence[Sequence[int]], device: torch.device,
                           *, min_reuse: int = MIN_REUSE) -> tuple[list[torch.Tensor], int]:
    """Next-token logits (float32, on CPU) after each prompt, one prompt at a time with the
    KV cache of the previous prompt cropped to the shared prefix. Returns the logits in the
    order of ``prompts`` and the number of tokens actually run through the model."""
    order = sorted(range(len(prompts)), key=lambda i: list(prompts[i]))
    out: list[torch.Tensor | None] = [None] * len(prompts)
    cache: Any = None
    cached: Sequence[int] = ()
    computed = 0
    for i in order:
        ids = prompts[i]
        keep = min(common_prefix(cached, ids), len(ids) - 1)  # at least one token runs
        if cache is None or keep < min_reuse or not _croppable(cache):
            cache, keep = None, 0
        else:
            _crop_to(cache, keep)
        run = torch.tensor([list(ids[keep:])], dtype=torch.long, device=device)
        pos = torch.arange(keep, len(ids), device=device).unsqueeze(0)
        res = model(input_ids=run, position_ids=pos, past_key_values=cache, use_cache=True,
                    logits_to_keep=1)
        cache, cached = res.past_key_values, ids
        computed += len(ids) - keep
        out[i] = res.logits[0, -1].float().cpu()
    return [t for t in out if t is not None], computed


@torch.inference_mode()
def prefill_shared(model: Any, prompts: Sequence[Sequence[int]], device: torch.device, pad_id: int,
                   *, min_reuse: int = MIN_REUSE) -> tuple[torch.Tensor, torch.Tensor, Any, int]:
    """Prefill a decode batch: the prefix common to ALL prompts runs once, its cache is
    repeated per row, then the left-padded suffixes run together.

    Returns (logits of the last position (B, vocab), the 2D attention mask over cache +
    suffix, the cache, token positions run through the model, padding included). Padding sits between the shared
    prefix and each suffix; the mask hides it and position ids skip it."""
    batch = len(prompts)
    shared = min(len(p) for p in prompts) - 1
    for p in prompts[1:]:
        shared = min(shared, common_prefix(prompts[0], p))
    cache: Any = None
    computed = 0
    if shared >= min_reuse and batch > 1:
        head = torch.tensor([list(prompts[0][:shared])], dtype=torch.long, device=device)
        res = model(input_ids=head, position_ids=torch.arange(shared, device=device).unsqueeze(0),
                    use_cache=True, logits_to_keep=1)
        cache = res.past_key_values
        computed += shared
        # a sliding window counts cache positions: padding between the prefix and a short
        # suffix would take the place of real tokens in its window. Left padding only there.
        if hasattr(cache, "batch_repeat_interleave") and not _sliding(cache):
            cache.batch_repeat_interleave(batch)
        else:  # caches without batch expansion, sliding windows: no reuse
            cache, shared = None, 0
    else:
        shared = 0
    suffixes = [list(p[shared:]) for p in prompts]
    width = max(len(s) for s in suffixes)
    ids = torch.full((batch, width), pad_id, dtype=torch.long)
    mask = torch.zeros((batch, shared + width), dtype=torch.long)
    mask[:, :shared] = 1
    pos = torch.zeros((batch, width), dtype=torch.long)
    for row, s in enumerate(suffixes):
        ids[row, width - len(s):] = torch.tensor(s, dtype=torch.long)
        mask[row, shared + width - len(s):] = 1
        pos[row, width - len(s):] = torch.arange(shared, shared + len(s))
    computed += batch * width  # padding costs compute too
    res = model(input_ids=ids.to(device), attention_mask=mask.to(device),
                position_ids=pos.to(device), past_key_values=cache, use_cache=True,
                logits_to_keep=1)
    return res.logits[:, -1, :].float(), mask, res.past_key_values, computed
