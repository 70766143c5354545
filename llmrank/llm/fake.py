"""A deterministic, model-free LLM backend for tests and dry runs of the pipeline.

Label log-probs come from a hash of (prompt, label), or from a user function (to script
garbage: NaN, -inf, constant rows); generations are scripted strings. Tokens are counted as
whitespace-separated words. Colleagues' tests (policies, chat, eval) can build a full
Recommender on it without loading a model."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence

import numpy as np

from llmrank.llm.base import GenerationConfig
from llmrank.prompts.chat import ChatMessage, PlainChatFormatter


class FakeLLM:
    name = "fake"

    def __init__(self, model: str = "fake", adapter: str | None = None, *,
                 max_prompt_tokens: int = 4096,
                 scores: Callable[[str, list[str]], Sequence[float]] | None = None,
                 generations: Sequence[str] | Callable[[str], str] = ("",), **options: object) -> None:
        self.model_id = model
        self.adapter = adapter
        self._max = max_prompt_tokens
        self._scores = scores
        self._generations = generations
        self.calls: list[tuple[str, int]] = []  # (method, n_prompts): what was asked
        self._formatter = PlainChatFormatter()

    def format_chat(self, messages: Sequence[ChatMessage], *, add_generation_prompt: bool = True) -> str:
        return self._formatter.format_chat(messages, add_generation_prompt=add_generation_prompt)

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def max_prompt_tokens(self) -> int:
        return self._max

    def label_logprobs(self, prompts: list[str], labels: list[str]) -> np.ndarray:
        self.calls.append(("label_logprobs", len(prompts)))
        out = np.empty((len(prompts), len(labels)))
        for i, p in enumerate(prompts):
            if self._scores is not None:
                out[i] = np.asarray(self._scores(p, list(labels)), dtype=np.float64)
            else:
                out[i] = [-(zlib.crc32(f"{p}|{lab}".encode()) % 1000) / 100.0 for lab in labels]
        return out

    def generate(self, prompts: list[str], config: GenerationConfig) -> list[str]:
        self.calls.append(("generate", len(prompts)))
        gen = self._generations
        if callable(gen):
            return [gen(p) for p in prompts]
        return [gen[i % len(gen)] if gen else "" for i in range(len(prompts))]

    def load_adapter(self, adapter: str, name: str | None = None) -> str:
        self.adapter = name or adapter
        return self.adapter

    def set_adapter(self, name: str | None) -> None:
        self.adapter = name
