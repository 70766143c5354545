"""Rank prompts for training, rendered by the reranker's own code.

Training examples must be byte-identical to what the reranker scores at inference, so they
come from ``llmrank.rerank.prompt.RankPromptBuilder`` applied through the model's chat
template (``llmrank.llm.hf_tokenizer``). Building a dataset needs only the tokenizer, not
the weights: ``TokenizerPromptModel`` is the tokenizer half of the transformers backend."""

from __future__ import annotations

from typing import Any

from llmrank.data.itemtext import item_title, item_title_genres
from llmrank.finetune.config import PromptSpec
from llmrank.llm.hf_tokenizer import HFTokenizerMixin, load_tokenizer
from llmrank.rerank.prompt import RankPromptBuilder


class TokenizerPromptModel(HFTokenizerMixin):
    """The PromptModel of a backend without its weights: chat template, token counts, label
    token ids. Same mixin as ``TransformersLLM``, so the rendered text cannot differ."""

    def __init__(self, tokenizer: Any, max_prompt_tokens: int = 2048) -> None:
        self.tokenizer = tokenizer
        self._max = int(max_prompt_tokens)

    @classmethod
    def from_path(cls, path: str, max_prompt_tokens: int = 2048) -> TokenizerPromptModel:
        return cls(load_tokenizer(path), max_prompt_tokens)

    def max_prompt_tokens(self) -> int:
        return self._max


def make_builder(model: Any, spec: PromptSpec) -> RankPromptBuilder:
    """The RankPromptBuilder that ``spec`` describes, for ``model`` (a backend or a
    TokenizerPromptModel). The reranker calls this with the spec from an adapter manifest."""
    candidate_text = {"title": item_title, "genres": item_title_genres}.get(spec.candidate_text)
    history_text = item_title_genres if spec.candidate_text == "genres" else item_title
    return RankPromptBuilder(model, spec.template, max_history=spec.max_history,
                             max_prompt_tokens=spec.max_prompt_tokens,
                             candidate_text=candidate_text, history_text=history_text)
