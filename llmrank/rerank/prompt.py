"""Rendering of the rank prompt: history and labelled candidates in, one string out, with
the labels the model answers with. The reranker AND the finetune recipe build their prompts
here, so training and inference can never drift apart.

The prompt length is bounded: the oldest history items go first, then candidate texts are
cut to titles; a prompt that still does not fit raises PromptError."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from llmrank.data.itemtext import TextLimits, item_title, render_item
from llmrank.errors import PromptError
from llmrank.llm.labels import ALPHABET, continuation
from llmrank.prompts.chat import ChatMessage
from llmrank.prompts.store import load_template
from llmrank.prompts.template import PromptTemplate
from llmrank.records import Item

# shorter than the embedding text: 20 candidates must fit in about 500 tokens
PROMPT_LIMITS = TextLimits(title=80, genres=3, tags=3, description=80, attributes=2, total=160)


class PromptModel(Protocol):
    """What the builder needs from a backend: its chat template and its token count."""

    def format_chat(self, messages: Sequence[ChatMessage], *, add_generation_prompt: bool = True) -> str: ...

    def count_tokens(self, text: str) -> int: ...

    def max_prompt_tokens(self) -> int: ...


@dataclass(frozen=True)
class RankPrompt:
    """One rendered rank prompt. ``item_ids[i]`` sits under ``labels[i]``."""

    text: str
    item_ids: tuple[str, ...]
    labels: tuple[str, ...]
    template: str
    version: str
    n_history: int  # history items kept after truncation
    prompt_tokens: int

    @property
    def continuations(self) -> list[str]:
        """What the model emits after the answer prefix for each label (' A', ' B', ...)."""
        return [continuation(lab) for lab in self.labels]

    def label_for(self, item_id: str) -> str:
        try:
            return self.labels[self.item_ids.index(item_id)]
        except ValueError:
            raise KeyError(f"{item_id!r} is not a candidate of this prompt") from None

    def completion_for(self, item_id: str) -> str:
        """The SFT target for ``item_id``: the continuation of its label (e.g. ' C')."""
        return continuation(self.label_for(item_id))

    def item_for(self, label: str) -> str:
        return self.item_ids[self.labels.index(label.strip())]


def _check_answer_prefix(template: PromptTemplate) -> None:
    """Labels are read as continuations with a leading space (' A'): after a prefix that
    already ends in whitespace ('The answer is: ') the model would emit 'A', not ' A', and
    every score would be of the wrong token. Refuse such a template when it is set up."""
    if template.answer_prefix[-1:].isspace():
        raise PromptError(
            f"{template.id}: answer_prefix {template.answer_prefix!r} ends in whitespace; the labels "
            "(' A', ' B', ...) bring their own leading space: remove it"
        )


class RankPromptBuilder:
    """Builds bounded rank prompts for one backend (its chat template and tokenizer)."""

    def __init__(self, model: PromptModel, template: str | PromptTemplate = "rank", *,
                 max_history: int = 20, max_prompt_tokens: int | None = None,
                 candidate_text: Callable[[Item], str] | None = None,
                 history_text: Callable[[Item], str] = item_title,
                 alphabet: Sequence[str] = ALPHABET) -> None:
        self.model = model
        self.template = template if isinstance(template, PromptTemplate) else load_template(template)
        _check_answer_prefix(self.template)
        self.max_history = max_history
        self._cap = max_prompt_tokens
        self.candidate_text = candidate_text or (lambda it: render_item(it, PROMPT_LIMITS))
        self.history_text = history_text
        self.alphabet = tuple(alphabet)
        dup = sorted({lab for lab in self.alphabet if self.alphabet.count(lab) > 1})
        if dup:
            raise PromptError(f"duplicate labels {dup} in the alphabet: a label must name one candidate")
        specials = getattr(model, "special_tokens", None)
        self._specials: tuple[str, ...] = tuple(specials()) if callable(specials) else ()

    @property
    def max_prompt_tokens(self) -> int:
        """The bound each prompt is fitted to: the backend's limit asked at every build (a
        server backend learns its model's limit only once it has asked the server), capped by
        the ``max_prompt_tokens`` given here."""
        limit = self.model.max_prompt_tokens()
        return min(limit, self._cap) if self._cap else limit

    @property
    def max_labels(self) -> int:
        return len(self.alphabet)

    def _render(self, history: Sequence[str], cands: Sequence[str], labels: Sequence[str],
                query: str | None) -> str:
        values: dict[str, Any] = {
            "history": list(history),
            "candidates": [{"label": lab, "text": t} for lab, t in zip(labels, cands, strict=True)],
            "labels": ", ".join(labels),
        }
        if query:
            values["query"] = query
        rendered = self.template.render(extra_specials=self._specials, **values)
        return rendered.to_text(self.model)

    def build(self, history: Sequence[Item], candidates: Sequence[Item], *,
              query: str | None = None) -> RankPrompt:
        """Render a prompt listing ``candidates`` (in this order) under labels A, B, ...

        Keeps the most recent ``max_history`` items, then drops the oldest until the prompt
        fits ``max_prompt_tokens`` (binary search over how many recent items to keep)."""
        if not candidates:
            raise PromptError("a rank prompt needs at least one candidate")
        if len(candidates) > len(self.alphabet):
            raise PromptError(f"{len(candidates)} candidates but only {len(self.alphabet)} labels")
        ids = [c.item_id for c in candidates]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:  # two labels for one item: label_for would answer for only one of them
            raise PromptError(f"duplicate candidates {dup}: each item can be listed once")
        labels = list(self.alphabet[: len(candidates)])
        limit = self.max_prompt_tokens
        hist = [self.history_text(it) for it in history][-self.max_history:] if self.max_history else []
        # the fallback cuts to titles at the prompt's title limit (item_title's default, 120
        # characters, is longer than the 80 a full text shows: a long title grew back)
        titles = [item_title(c, PROMPT_LIMITS) for c in candidates]
        for texts in ([self.candidate_text(c) for c in candidates], titles):
            found = self._fit(hist, texts, labels, query, limit)
            if found is not None:
                text, kept, n_tok = found
                return RankPrompt(text, tuple(c.item_id for c in candidates), tuple(labels),
                                  self.template.name, self.template.version, kept, n_tok)
        raise PromptError(
            f"rank prompt with {len(candidates)} candidates does not fit {limit} tokens "
            "even without history and with titles only"
        )

    def _fit(self, hist: list[str], cands: list[str], labels: list[str],
             query: str | None, limit: int) -> tuple[str, int, int] | None:
        def attempt(keep: int) -> tuple[str, int]:
            text = self._render(hist[len(hist) - keep:] if keep else [], cands, labels, query)
            return text, self.model.count_tokens(text)

        text, n = attempt(len(hist))
        if n <= limit:
            return text, len(hist), n
        lo, hi = 0, len(hist) - 1  # largest keep in [lo, hi] that fits
        best: tuple[str, int, int] | None = None
        while lo <= hi:
            mid = (lo + hi) // 2
            text, n = attempt(mid)
            if n <= limit:
                best, lo = (text, mid, n), mid + 1
            else:
                hi = mid - 1
        return best
