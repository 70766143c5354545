"""Explanations for the items actually shown: one templated generation per item, batched,
grounded in the user's history and the item's attributes, validated, with a factual
template sentence as the fallback. Explanations are optional per request: decoding costs far
more than one-pass scoring."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from llmrank.data.itemtext import item_title, render_item
from llmrank.errors import LlmrankError
from llmrank.explain.fallback import fallback_explanation, shared_terms
from llmrank.explain.titles import cited
from llmrank.explain.validate import Verdict, shown_text, validate_explanation
from llmrank.llm.base import LLM, GenerationConfig
from llmrank.prompts.store import load_template
from llmrank.prompts.template import PromptTemplate
from llmrank.records import Item, LLMCall

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Explanation:
    item_id: str
    text: str
    source: str  # 'model' or 'fallback'
    rejected: str = ""  # why the model's text was rejected, when it was


class Explainer:
    """Writes and checks explanations. With ``llm=None`` only fallback sentences are made.

    ``vocabulary`` is the catalog's attribute terms (its genres): an explanation that names
    one the item and the history do not have ("a gripping thriller" for a comedy) is
    rejected like an invented title.

    ``adapter``: 'base' writes with the base model, switching off the LoRA adapter the shared
    LLM may have active for ranking (that adapter is trained to answer with one label letter,
    not to write prose) and switching it back after; 'reranker' writes with whatever is active."""

    def __init__(self, llm: LLM | None, template: str | PromptTemplate = "explain", *,
                 max_new_tokens: int = 48, max_history: int = 8,
                 max_prompt_tokens: int | None = None, vocabulary: Iterable[str] = (),
                 adapter: Literal["base", "reranker"] = "base") -> None:
        self.llm = llm
        self.adapter = adapter
        self.vocabulary = tuple(dict.fromkeys(vocabulary))
        self.template = template if isinstance(template, PromptTemplate) else load_template(template)
        self.max_new_tokens = max_new_tokens
        self.max_history = max_history
        self.prompt_token_cap = max_prompt_tokens  # below the backend's own limit, if given

    def max_prompt_tokens(self) -> int:
        """The backend's limit now (an OpenAI-compatible server reports its own only once
        asked), capped by ``max_prompt_tokens`` when one was given."""
        limit = self.llm.max_prompt_tokens() if self.llm else 10**9
        return min(limit, self.prompt_token_cap) if self.prompt_token_cap else limit

    def _prompt(self, history: Sequence[Item], item: Item, query: str | None) -> tuple[str, int]:
        assert self.llm is not None
        hist = [item_title(h) for h in history[-self.max_history:]] if self.max_history > 0 else []
        shared = shared_terms(item, history)
        limit = self.max_prompt_tokens()
        for keep in range(len(hist), -1, -1):  # drop the oldest history first
            values: dict[str, Any] = {"history": hist[len(hist) - keep:] if keep else [],
                                         "item": render_item(item), "shared": shared}
            if query:
                values["query"] = query
            text = self.template.render(**values).to_text(self.llm)
            n = self.llm.count_tokens(text)
            if n + self.max_new_tokens <= limit:
                return text, n
        raise LlmrankError("explain prompt does not fit the backend's prompt limit")

    def explain(self, history: Sequence[Item], items: Sequence[Item], *,
                known: Sequence[Item] = (), query: str | None = None,
                ) -> tuple[list[Explanation], LLMCall | None]:
        """One explanation per item in ``items``. ``known`` adds items (e.g. all candidates)
        that an explanation may name besides the history and the item itself."""
        if not items:
            return [], None
        if self.llm is None:
            return [Explanation(it.item_id, fallback_explanation(it, history, query), "fallback")
                    for it in items], None
        start = time.perf_counter()
        prompts, n_tokens = [], 0
        for it in items:
            text, n = self._prompt(history, it, query)
            prompts.append(text)
            n_tokens += n
        outputs, failure = self._generate(prompts)
        prefix = self.template.answer_prefix  # the prompt ends with it: it is part of the text
        outputs = [prefix + out if prefix and out.strip() else out for out in outputs]
        history_titles = [item_title(h) for h in history]
        titles = [*history_titles, *(item_title(x) for x in (*known, *items))]
        terms = [t for x in (*history, *known, *items) for t in (*x.genres, *x.tags)]
        result = []
        said: set[str] = set()  # a small model often says the same words for every item
        for it, out in zip(items, outputs, strict=True):
            verdict = validate_explanation(out, titles, terms, vocabulary=self.vocabulary,
                                           claimable=_claimable(shown_text(out), it, history),
                                           history_titles=history_titles, item_title=item_title(it),
                                           item_terms=[*it.genres, *it.tags])
            if verdict.ok and verdict.text.casefold() in said:
                verdict = Verdict(False, "same text as an earlier item's explanation")
            if verdict.ok:
                said.add(verdict.text.casefold())
                result.append(Explanation(it.item_id, verdict.text, "model"))
            else:
                log.debug("explanation for %s rejected (%s): %r", it.item_id, verdict.reason, out)
                result.append(Explanation(it.item_id, fallback_explanation(it, history, query),
                                          "fallback", failure or verdict.reason))
        # a failed call generated nothing: the trace shows no prompts (the time spent stays)
        done = 0 if failure else len(prompts)
        call = LLMCall(
            stage="explain", backend=self.llm.name, model=self.llm.model_id,
            adapter=self.writing_adapter_name(),
            template=self.template.name, template_version=self.template.version,
            prompt_tokens=n_tokens if done else 0, seconds=time.perf_counter() - start, n_prompts=done,
        )
        return result, call

    def _generate(self, prompts: list[str]) -> tuple[list[str], str]:
        """The model's texts, and why generation failed ('' when it did not): a failing
        model must not fail the recommendation, but the trace must not show a normal call."""
        assert self.llm is not None
        try:
            with self._writing_adapter() as _:
                return self.llm.generate(prompts, GenerationConfig(
                    max_new_tokens=self.max_new_tokens, stop=("\n\n", "<|", "Recommended:"))), ""
        except LlmrankError as exc:
            log.warning("explanation generation failed, using fallbacks: %s", exc)
            return [""] * len(prompts), f"generation failed: {exc}"

    @contextmanager
    def _writing_adapter(self) -> Iterator[str | None]:
        """The adapter active while writing (see the class docstring), restored afterwards."""
        assert self.llm is not None
        active = self.llm.adapter
        if self.adapter == "reranker" or active is None:
            yield active
            return
        self.llm.set_adapter(None)
        try:
            yield None
        finally:
            self.llm.set_adapter(active)

    def writing_adapter_name(self) -> str | None:
        """The adapter explanations are written with, for the trace."""
        return None if self.llm is None or self.adapter == "base" else self.llm.adapter


def _claimable(text: str, item: Item, history: Sequence[Item]) -> list[str]:
    """The genres and tags ``text`` may name: the item's own, and those of the history items
    it cites. The whole history would allow almost any genre (a long MovieLens history covers
    most of them), so "a comedy and horror" of a comedy passed whenever the user once watched
    a horror film; a genre must be the item's or belong to a film the text points to.
    ``text`` is the shown text: a film cited only in a dropped third sentence does not count."""
    by_title = {item_title(h): h for h in history}
    films = [by_title[title] for _, _, title in cited(text, list(by_title))]
    return [t for x in (item, *films) for t in (*x.genres, *x.tags)]
