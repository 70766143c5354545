"""LLM backend interface: score the next-token log-probs of label tokens (one forward pass
per prompt) and generate text. Every backend (transformers, vllm, openai) implements it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class GenerationConfig:
    max_new_tokens: int = 64
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    stop: tuple[str, ...] = ()


@runtime_checkable
class LLM(Protocol):
    name: str  # backend name in the registry
    model_id: str
    adapter: str | None

    def label_logprobs(self, prompts: list[str], labels: list[str]) -> np.ndarray:
        """(len(prompts), len(labels)) next-token log-probs of each label's first token after
        each prompt (chat template already applied by the caller's template rendering)."""
        ...

    def generate(self, prompts: list[str], config: GenerationConfig) -> list[str]: ...

    def count_tokens(self, text: str) -> int: ...

    def max_prompt_tokens(self) -> int: ...
