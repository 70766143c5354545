"""The transformers backend: the CPU default and the numerical reference for the others.

Scoring is one forward pass per prompt. On a CPU, prompts run one at a time in token order,
each reusing the KV cache of the prefix it shares with the previous one (kv_reuse): no
padding, and the system prompt and history of a request are computed once for all its
permutations and windows. On a GPU, where batching pays, prompts run in left-padded batches
with explicit position ids, so padding changes nothing. Only the last position's logits are
computed (``logits_to_keep=1``) and the log-softmax covers that position only.

fp32 on CPU (bf16 matmuls without native bf16 units measured 6x slower here, and are less
exact), bf16 on GPU. LoRA adapters load through peft, several at once, switched by name.
Generation is the batched decode loop of hf_decode (shared-prefix prefill, per-row stops)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from llmrank.devices import resolve_device
from llmrank.errors import ModelError, PromptError
from llmrank.llm.base import GenerationConfig, NamedAdapters
from llmrank.llm.cpu_threads import set_torch_threads
from llmrank.llm.hf_decode import DecodeStats, decode_batch
from llmrank.llm.hf_tokenizer import HFTokenizerMixin, cut_at_stop, load_tokenizer
from llmrank.llm.kv_reuse import last_logits_with_reuse
from llmrank.models.adapter_fit import check_adapter_base, load_error
from llmrank.models.resolve import resolve_adapter, resolve_model

log = logging.getLogger(__name__)


def pick_device(device: str) -> torch.device:
    return torch.device(resolve_device(device))


def pick_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    value = getattr(torch, dtype, None)
    if not isinstance(value, torch.dtype):
        raise ModelError(f"unknown dtype {dtype!r}")
    return value


class TransformersLLM(NamedAdapters, HFTokenizerMixin):
    """Options: ``threads`` sets torch's thread count (process-wide; None keeps torch's
    default), ``prefix_reuse`` scores prompts one by one with shared-prefix KV reuse (None:
    on CPU only), ``batch_size`` bounds the rows of a padded batch (GPU scoring, decoding)."""

    name = "transformers"
    prefix_reuse: bool | None = None  # class defaults: subclasses that skip __init__ work too
    last_stats: dict[str, int] | None = None  # token positions run by the last call (profiling)

    def __init__(self, model: str = "default", adapter: str | None = None, *,
                 device: str = "auto", dtype: str = "auto", batch_size: int = 8,
                 max_prompt_tokens: int = 2048, trust_remote_code: bool = False,
                 threads: int | None = None, prefix_reuse: bool | None = None,
                 **options: Any) -> None:
        from transformers import AutoModelForCausalLM

        if options:  # a typo in reranker.options must not pass silently (the CLI shows warnings)
            log.warning("transformers backend: unknown option(s) %s ignored; it takes threads, "
                        "prefix_reuse, trust_remote_code, batch_size, device, dtype",
                        ", ".join(sorted(options)))
        self.model_id = model
        self.path = resolve_model(model)
        self.device = pick_device(device)
        self.dtype = pick_dtype(dtype, self.device)
        self.batch_size = max(1, int(batch_size))
        self.threads = set_torch_threads(threads) if self.device.type == "cpu" else None
        self.prefix_reuse = prefix_reuse
        try:
            self.tokenizer = load_tokenizer(self.path, trust_remote_code=trust_remote_code)
            loaded: Any = AutoModelForCausalLM.from_pretrained(
                self.path, dtype=self.dtype, trust_remote_code=trust_remote_code,
            )
            self.model: Any = loaded.to(self.device)
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot load model {model!r} ({self.path}): {exc}") from exc
        self.model.eval()
        log.debug("loaded %s: %s, attention %s, %s threads", self.path, self.dtype,
                  getattr(self.model.config, "_attn_implementation", "?"), self.threads)
        ctx = int(getattr(self.model.config, "max_position_embeddings", 0) or max_prompt_tokens)
        self._max_prompt = min(int(max_prompt_tokens), ctx)
        self.adapter = None
        self._adapters: dict[str, str] = {}
        if adapter:
            self.load_adapter(adapter)

    # ---- adapters ----------------------------------------------------------------------
    def load_adapter(self, adapter: str, name: str | None = None) -> str:
        from peft import PeftModel

        path = resolve_adapter(adapter)
        name = self._name_for(path, name)
        if name not in self._adapters:
            check_adapter_base(path, self.model_id, self.path)
            try:
                if isinstance(self.model, PeftModel):
                    self.model.load_adapter(str(path), adapter_name=name)
                else:
                    self.model = PeftModel.from_pretrained(self.model, str(path), adapter_name=name)
            except (RuntimeError, ValueError, KeyError) as exc:  # peft: size mismatch, missing modules
                raise load_error(path, self.model_id, exc) from exc
            self.model.to(device=self.device, dtype=self.dtype)
            self.model.eval()
            self._adapters[name] = str(path)
        self.set_adapter(name)
        return name

    def set_adapter(self, name: str | None) -> None:
        super().set_adapter(name)
        if name is not None:
            self.model.set_adapter(name)

    def _adapter_context(self) -> Any:
        """Disable LoRA layers while no adapter is active (peft keeps them attached)."""
        import contextlib

        if self.adapter is None and self._adapters:
            return self.model.disable_adapter()
        return contextlib.nullcontext()

    # ---- scoring -----------------------------------------------------------------------
    def max_prompt_tokens(self) -> int:
        return self._max_prompt

    def _reuse(self) -> bool:
        return self.device.type == "cpu" if self.prefix_reuse is None else bool(self.prefix_reuse)

    def _ids(self, prompts: Sequence[str]) -> list[list[int]]:
        """Token ids of each prompt (no special tokens added), checked against the bound."""
        ids = [self.encode(p) for p in prompts]
        for row in ids:
            if len(row) > self._max_prompt:
                raise PromptError(f"prompt of {len(row)} tokens exceeds the limit of {self._max_prompt}")
            if not row:
                raise PromptError("empty prompt")
        return ids

    def _batches(self, prompts: Sequence[Any]) -> list[list[int]]:
        """Prompt indices grouped by similar length (less padding), in batch_size groups."""
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        return [order[i: i + self.batch_size] for i in range(0, len(order), self.batch_size)]

    def _padded(self, rows: Sequence[Sequence[int]]) -> dict[str, torch.Tensor]:
        """A left-padded batch with position ids that skip the padding."""
        width = max(len(r) for r in rows)
        pad = int(self.tokenizer.pad_token_id)
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, width - len(r):] = torch.tensor(list(r), dtype=torch.long)
            mask[i, width - len(r):] = 1
        position_ids = (mask.cumsum(dim=1) - 1).clamp(min=0)
        return {"input_ids": ids.to(self.device), "attention_mask": mask.to(self.device),
                "position_ids": position_ids.to(self.device)}

    @torch.inference_mode()
    def next_token_logprobs(self, prompts: Sequence[str]) -> torch.Tensor:
        """(n, vocab) float32 log-softmax of the next token after each prompt."""
        if not prompts:
            return torch.zeros(0, 0)
        ids = self._ids(prompts)
        with self._adapter_context():
            if self._reuse():
                logits, positions = last_logits_with_reuse(self.model, ids, self.device)
                stacked = torch.stack(logits)
            else:
                rows: list[torch.Tensor | None] = [None] * len(ids)
                positions = 0
                for idx in self._batches(ids):
                    batch = self._padded([ids[i] for i in idx])
                    positions += int(batch["input_ids"].numel())
                    out = self.model(**batch, logits_to_keep=1, use_cache=False).logits[:, -1, :]
                    for row, i in enumerate(idx):
                        rows[i] = out[row].float().cpu()
                stacked = torch.stack([r for r in rows if r is not None])
        self.last_stats = {"prompt_tokens": sum(len(r) for r in ids), "positions_run": positions}
        return torch.log_softmax(stacked, dim=-1)

    def label_logprobs(self, prompts: list[str], labels: list[str]) -> np.ndarray:
        ids = self.prompt_label_ids(prompts, labels)
        if not prompts:
            return np.zeros((0, len(labels)), dtype=np.float64)
        logp = self.next_token_logprobs(prompts)
        return logp[:, ids].double().numpy()

    # ---- generation --------------------------------------------------------------------
    def _eos_ids(self) -> list[int]:
        found: list[int] = []
        for source in (getattr(getattr(self.model, "generation_config", None), "eos_token_id", None),
                       self.tokenizer.eos_token_id):
            values = source if isinstance(source, (list, tuple)) else [source]
            found += [int(v) for v in values if v is not None]
        return sorted(set(found))

    def _budget(self, prompt_len: int, max_new_tokens: int) -> int:
        """New tokens a prompt may get inside the model's context (at least 1), the rule of
        the vllm backend's ``generation_budget``: positions past the context are never run."""
        ctx = int(getattr(self.model.config, "max_position_embeddings", 0) or 0)
        return max(1, min(int(max_new_tokens), ctx - prompt_len)) if ctx else int(max_new_tokens)

    def generate(self, prompts: list[str], config: GenerationConfig) -> list[str]:
        """Batches of ``batch_size`` prompts (similar prompts together, so a user's prompts
        share their prefix), decoded by hf_decode; stop strings cut the text."""
        if not prompts:
            return []
        ids = self._ids(prompts)
        out = [""] * len(prompts)
        stats = DecodeStats()
        order = sorted(range(len(ids)), key=lambda i: ids[i])
        groups = [order[i: i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        with self._adapter_context():
            for idx in groups:
                new = decode_batch(self.model, self.tokenizer, [ids[i] for i in idx], config,
                                   self.device, eos_ids=self._eos_ids(),
                                   pad_id=int(self.tokenizer.pad_token_id), stats=stats,
                                   budgets=[self._budget(len(ids[i]), config.max_new_tokens) for i in idx])
                for row, i in enumerate(idx):
                    text = self.tokenizer.decode(new[row], skip_special_tokens=True)
                    out[i] = cut_at_stop(text, config.stop)
        self.last_stats = {"prompt_tokens": sum(len(r) for r in ids),
                           "positions_run": stats.prefill_positions, "decode_steps": stats.steps,
                           "new_tokens": stats.new_tokens}
        return out
