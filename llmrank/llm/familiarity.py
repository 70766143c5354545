"""How familiar a language model is with an item's title: the mean per-token log-probability
of the title after a fixed context ("Here is a well-known movie:").

Why: zero-shot, a small LLM ranks candidates at chance by its label scores (eval/RESULTS.md
section 5.2), but it has read about famous titles far more often than obscure ones, so its
familiarity with a title tracks the title's popularity. That is a user-independent prior
that needs no interaction log: an LLM-derived prior for the exploration policies and for
catalogs whose popularity is not known yet. It is computed once per item (a short forward
pass over the title), not per request. Mean rather than sum: a sum mostly measures length.

Needs a backend that exposes a transformers model and tokenizer (``transformers``); others
raise ``ModelError``."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from llmrank.errors import ModelError

log = logging.getLogger(__name__)

DEFAULT_CONTEXT = "Here is a well-known movie:"
MAX_TITLE_TOKENS = 24  # a title longer than this is judged on its first tokens


def text_familiarity(llm: Any, texts: Sequence[str], *, context: str = DEFAULT_CONTEXT,
                     batch_size: int = 32,
                     progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Mean log p(token | context, earlier tokens) over each text's tokens (float64, one per
    text, higher = more familiar). Texts are batched by token length so little is padded."""
    import torch

    model, tok = getattr(llm, "model", None), getattr(llm, "tokenizer", None)
    if model is None or tok is None:
        raise ModelError(f"{type(llm).__name__} exposes no transformers model and tokenizer; "
                         "title familiarity needs the transformers backend")
    device = next(model.parameters()).device
    # the first title token is predicted from the context's last one: with no context, BOS
    ctx = tok(context, add_special_tokens=False).input_ids or [_start_token(tok)]
    rows = [tok(" " + t.strip(), add_special_tokens=False).input_ids[:MAX_TITLE_TOKENS] or
            [int(tok.eos_token_id or 0)] for t in texts]
    out = np.zeros(len(rows), dtype=np.float64)
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    pad = int(tok.pad_token_id if tok.pad_token_id is not None else 0)
    done = 0
    # the backend's adapter state: a loaded but inactive LoRA adapter must not touch the scores
    adapter_state = getattr(llm, "_adapter_context", None)
    with torch.inference_mode(), (adapter_state() if adapter_state else contextlib.nullcontext()):
        for start in range(0, len(order), batch_size):
            idx = order[start: start + batch_size]
            width = len(ctx) + max(len(rows[i]) for i in idx)
            ids = torch.full((len(idx), width), pad, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for j, i in enumerate(idx):  # right padding: positions are the same for every row
                seq = ctx + rows[i]
                ids[j, : len(seq)] = torch.tensor(seq)
                mask[j, : len(seq)] = 1
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
            logp = torch.log_softmax(logits.float(), dim=-1).cpu()
            for j, i in enumerate(idx):
                pos = torch.arange(len(ctx) - 1, len(ctx) + len(rows[i]) - 1)
                out[i] = float(logp[j, pos, torch.tensor(rows[i])].double().mean())
            done += len(idx)
            if progress:
                progress(done, len(rows))
    return out


def _start_token(tok: Any) -> int:
    for tid in (tok.bos_token_id, tok.eos_token_id):
        if tid is not None:
            return int(tid)
    raise ModelError("an empty familiarity context needs a tokenizer with a BOS or EOS token")


def cached_familiarity(llm: Any, texts: Sequence[str], cache_dir: str | Path | None, *,
                       model_id: str, context: str = DEFAULT_CONTEXT, batch_size: int = 32,
                       progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """``text_familiarity`` with an on-disk cache keyed by model, context and texts (a catalog
    is scored once; a changed title or model computes afresh)."""
    key = hashlib.sha256(json.dumps([model_id, context, MAX_TITLE_TOKENS, list(texts)]).encode()).hexdigest()[:16]
    path = Path(cache_dir) / f"familiarity-{key}.npy" if cache_dir else None
    if path is not None and path.is_file():
        scores = np.load(path)
        if scores.shape == (len(texts),):
            log.info("familiarity: %d cached scores from %s", len(texts), path)
            return np.asarray(scores, dtype=np.float64)
    scores = text_familiarity(llm, texts, context=context, batch_size=batch_size, progress=progress)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, scores)
    return scores


def catalog_familiarity(dataset: Any, llm: Any, *, cache_dir: str | Path | None = None,
                        context: str = DEFAULT_CONTEXT, batch_size: int = 32) -> np.ndarray:
    """Familiarity of every catalog item's title ("Title (year)"), in item-code order; cached
    under ``cache_dir`` (default ``$LLMRANK_HOME/familiarity``). ``context`` names the kind of
    item ("Here is a well-known book:" for books)."""
    from llmrank.config import llmrank_home
    from llmrank.data.itemtext import item_title

    titles = [item_title(dataset.items[i]) for i in dataset.item_ids]
    adapter = getattr(llm, "adapter", None)
    model_id = str(getattr(llm, "path", None) or type(llm).__name__) + (f"+{adapter}" if adapter else "")
    return cached_familiarity(llm, titles, cache_dir if cache_dir is not None else llmrank_home() / "familiarity",
                              model_id=model_id, context=context, batch_size=batch_size)
