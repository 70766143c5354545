"""The transformers backend over a model that is being trained, for validation inside the
training loop: label scoring must use the reranker's own code path (left padding, explicit
position ids, next-token log-probs), not a re-implementation that could drift from it."""

from __future__ import annotations

from typing import Any

import torch

from llmrank.llm.hf_tokenizer import load_tokenizer
from llmrank.llm.transformers_backend import TransformersLLM


class LiveTransformersLLM(TransformersLLM):
    """A ``TransformersLLM`` around an in-memory (peft) model instead of a path.

    Reuses the parent's scoring methods unchanged; only the construction differs (nothing
    is loaded from disk but the tokenizer, which the scorer needs left-padded). Scoring uses
    plain left-padded batches, not shared-prefix KV reuse: a validation pass must not depend
    on cache machinery while the weights are being trained."""

    prefix_reuse = False

    def __init__(self, model: Any, tokenizer_path: str, *, model_id: str = "live",
                 batch_size: int = 4, max_prompt_tokens: int = 2048) -> None:
        # deliberately not calling TransformersLLM.__init__: it loads weights from a path
        self.model_id = model_id
        self.path = tokenizer_path
        self.model = model
        self.device = next(model.parameters()).device
        self.dtype = getattr(model, "dtype", torch.float32)
        self.batch_size = max(1, int(batch_size))
        self.tokenizer = load_tokenizer(tokenizer_path)
        ctx = int(getattr(model.config, "max_position_embeddings", 0) or max_prompt_tokens)
        self._max_prompt = min(int(max_prompt_tokens), ctx)
        self.adapter = None
        self._adapters: dict[str, str] = {}  # the live adapter is active; none loaded by name
