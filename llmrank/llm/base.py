"""LLM backend interface: score the next-token log-probs of label tokens (one forward pass
per prompt) and generate text. Every backend (transformers, vllm, openai) implements it.

Prompts reach a backend as finished strings: the caller renders a template and applies the
backend's chat template through ``format_chat``, so that every backend scores exactly the
same text and the transformers backend can serve as the numerical reference."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from llmrank.prompts.chat import ChatMessage


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
    model_id: str  # what was asked for ('default', an HF id, a path)
    adapter: str | None  # name of the active LoRA adapter, None for the base model

    def format_chat(self, messages: Sequence[ChatMessage], *, add_generation_prompt: bool = True) -> str:
        """The model's chat template applied to ``messages``."""
        ...

    def label_logprobs(self, prompts: list[str], labels: list[str]) -> np.ndarray:
        """(len(prompts), len(labels)) full-vocabulary next-token log-probs of each label after
        each prompt. Labels are continuation strings that must each be ONE token (e.g. ' A');
        a backend raises ModelError otherwise. Not renormalised: the caller does that."""
        ...

    def generate(self, prompts: list[str], config: GenerationConfig) -> list[str]:
        """Greedy (temperature 0) or sampled continuations, stop strings cut off."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` as the model sees it (no special tokens added)."""
        ...

    def max_prompt_tokens(self) -> int:
        """The longest prompt this backend accepts; callers shorten prompts to fit."""
        ...

    def load_adapter(self, adapter: str, name: str | None = None) -> str:
        """Load a LoRA adapter (a name under ``llmrank_home()/adapters`` or a path), make it
        active and return its name."""
        ...

    def set_adapter(self, name: str | None) -> None:
        """Activate a loaded adapter by name; None scores with the base model."""
        ...


class NamedAdapters:
    """The adapter bookkeeping every backend shares: loaded adapters by name and the active
    one. Backends fill ``_adapters`` in ``load_adapter``; what a value holds is theirs (a path,
    a vLLM ``LoRARequest``)."""

    adapter: str | None = None
    _adapters: dict[str, Any]

    def _adapter_path(self, loaded: Any) -> str:
        """The folder an entry of ``_adapters`` was loaded from (a path by default)."""
        return str(loaded)

    def _name_for(self, path: Path, name: str | None) -> str:
        """The name ``path`` is (or will be) loaded under: ``name``, else the folder's name,
        numbered when another folder holds it (every finetune run writes ``<out>/adapter``: a
        second run's adapter was taken for the first one, whose weights kept serving). A name
        given for another folder than the one loaded under it is a ModelError."""
        from llmrank.errors import ModelError

        def same(loaded: Any) -> bool:
            return Path(self._adapter_path(loaded)).resolve() == path.resolve()

        if name is not None:
            if name in self._adapters and not same(self._adapters[name]):
                raise ModelError(f"adapter name {name!r} is already loaded from "
                                 f"{self._adapter_path(self._adapters[name])}; give {path} another name")
            return name
        for loaded_name, loaded in self._adapters.items():
            if same(loaded):
                return loaded_name
        name, n = path.name, 1
        while name in self._adapters:
            n += 1
            name = f"{path.name}-{n}"
        return name

    def set_adapter(self, name: str | None) -> None:
        from llmrank.errors import ModelError

        if name is not None and name not in self._adapters:
            raise ModelError(f"adapter {name!r} is not loaded; loaded: {sorted(self._adapters)}")
        self.adapter = name


def check_prompt_lengths(llm: LLM, prompts: Sequence[str], lengths: Sequence[int]) -> None:
    """Raise PromptError when a prompt exceeds the backend's bound (callers truncate first)."""
    from llmrank.errors import PromptError

    limit = llm.max_prompt_tokens()
    for n in lengths:
        if n > limit:
            raise PromptError(f"prompt of {n} tokens exceeds the backend limit of {limit}")
    del prompts
