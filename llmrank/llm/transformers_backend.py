"""The transformers backend: the CPU default and the numerical reference for the others.

Scoring is one forward pass per prompt over left-padded batches (so the next-token position
is the last column for every row), with explicit position ids so padding changes nothing.
fp32 on CPU (bf16 matmuls are slow there and less exact), bf16 on GPU. LoRA adapters load
through peft, several at once, switched by name."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from llmrank.errors import ModelError, PromptError
from llmrank.llm.base import GenerationConfig
from llmrank.llm.hf_tokenizer import HFTokenizerMixin, cut_at_stop, load_tokenizer
from llmrank.models.resolve import resolve_adapter, resolve_model

log = logging.getLogger(__name__)


def pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def pick_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    value = getattr(torch, dtype, None)
    if not isinstance(value, torch.dtype):
        raise ModelError(f"unknown dtype {dtype!r}")
    return value


class TransformersLLM(HFTokenizerMixin):
    name = "transformers"

    def __init__(self, model: str = "default", adapter: str | None = None, *,
                 device: str = "auto", dtype: str = "auto", batch_size: int = 8,
                 max_prompt_tokens: int = 2048, trust_remote_code: bool = False,
                 **options: Any) -> None:
        from transformers import AutoModelForCausalLM

        if options:
            log.debug("transformers backend ignores options %s", sorted(options))
        self.model_id = model
        self.path = resolve_model(model)
        self.device = pick_device(device)
        self.dtype = pick_dtype(dtype, self.device)
        self.batch_size = max(1, int(batch_size))
        self.tokenizer = load_tokenizer(self.path, trust_remote_code=trust_remote_code)
        try:
            loaded: Any = AutoModelForCausalLM.from_pretrained(
                self.path, dtype=self.dtype, trust_remote_code=trust_remote_code,
            )
            self.model: Any = loaded.to(self.device)
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot load model {model!r} ({self.path}): {exc}") from exc
        self.model.eval()
        ctx = int(getattr(self.model.config, "max_position_embeddings", 0) or max_prompt_tokens)
        self._max_prompt = min(int(max_prompt_tokens), ctx)
        self.adapter: str | None = None
        self._adapters: dict[str, str] = {}
        if adapter:
            self.load_adapter(adapter)

    # ---- adapters ----------------------------------------------------------------------
    def load_adapter(self, adapter: str, name: str | None = None) -> str:
        from peft import PeftModel

        path = resolve_adapter(adapter)
        name = name or path.name
        if name not in self._adapters:
            if isinstance(self.model, PeftModel):
                self.model.load_adapter(str(path), adapter_name=name)
            else:
                self.model = PeftModel.from_pretrained(self.model, str(path), adapter_name=name)
            self.model.to(device=self.device, dtype=self.dtype)
            self.model.eval()
            self._adapters[name] = str(path)
        self.set_adapter(name)
        return name

    def set_adapter(self, name: str | None) -> None:
        if name is not None:
            if name not in self._adapters:
                raise ModelError(f"adapter {name!r} is not loaded; loaded: {sorted(self._adapters)}")
            self.model.set_adapter(name)
        self.adapter = name

    def _adapter_context(self) -> Any:
        """Disable LoRA layers while no adapter is active (peft keeps them attached)."""
        import contextlib

        if self.adapter is None and self._adapters:
            return self.model.disable_adapter()
        return contextlib.nullcontext()

    # ---- scoring -----------------------------------------------------------------------
    def max_prompt_tokens(self) -> int:
        return self._max_prompt

    def _batches(self, prompts: Sequence[str]) -> list[list[int]]:
        """Prompt indices grouped by similar length (less padding), in batch_size groups."""
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        return [order[i: i + self.batch_size] for i in range(0, len(order), self.batch_size)]

    def _encode_batch(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        enc = self.tokenizer(list(texts), return_tensors="pt", padding=True, add_special_tokens=False)
        lengths = enc["attention_mask"].sum(dim=1)
        too_long = [int(n) for n in lengths if int(n) > self._max_prompt]
        if too_long:
            raise PromptError(f"prompt of {too_long[0]} tokens exceeds the limit of {self._max_prompt}")
        mask = enc["attention_mask"]
        position_ids = (mask.cumsum(dim=1) - 1).clamp(min=0)
        return {"input_ids": enc["input_ids"].to(self.device), "attention_mask": mask.to(self.device),
                "position_ids": position_ids.to(self.device)}

    @torch.inference_mode()
    def next_token_logprobs(self, prompts: Sequence[str]) -> torch.Tensor:
        """(n, vocab) float32 log-softmax of the next token after each prompt."""
        out: list[torch.Tensor | None] = [None] * len(prompts)
        with self._adapter_context():
            for idx in self._batches(prompts):
                batch = self._encode_batch([prompts[i] for i in idx])
                logits = self.model(**batch, logits_to_keep=1, use_cache=False).logits[:, -1, :]
                logp = torch.log_softmax(logits.float(), dim=-1).cpu()
                for row, i in enumerate(idx):
                    out[i] = logp[row]
        return torch.stack([t for t in out if t is not None]) if prompts else torch.zeros(0, 0)

    def label_logprobs(self, prompts: list[str], labels: list[str]) -> np.ndarray:
        ids = self.label_ids(labels)
        if not prompts:
            return np.zeros((0, len(labels)), dtype=np.float64)
        logp = self.next_token_logprobs(prompts)
        return logp[:, ids].double().numpy()

    # ---- generation --------------------------------------------------------------------
    @torch.inference_mode()
    def generate(self, prompts: list[str], config: GenerationConfig) -> list[str]:
        out = [""] * len(prompts)
        sample = config.temperature > 0
        if sample:
            torch.manual_seed(config.seed)
        with self._adapter_context():
            for idx in self._batches(prompts):
                batch = self._encode_batch([prompts[i] for i in idx])
                batch.pop("position_ids")  # generate derives them from the attention mask
                kwargs: dict[str, Any] = {"max_new_tokens": config.max_new_tokens, "do_sample": sample,
                                          "pad_token_id": self.tokenizer.pad_token_id}
                if sample:
                    kwargs.update(temperature=config.temperature, top_p=config.top_p)
                else:
                    kwargs.update(temperature=None, top_p=None, top_k=None)
                gen = self.model.generate(**batch, **kwargs)
                new = gen[:, batch["input_ids"].shape[1]:]
                for row, i in enumerate(idx):
                    text = self.tokenizer.decode(new[row], skip_special_tokens=True)
                    out[i] = cut_at_stop(text, config.stop)
        return out
