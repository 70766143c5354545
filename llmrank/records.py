"""Typed records that flow between pipeline stages (retrieve -> rerank -> explore -> explain).

Ids are always the dataset's own ids as strings; integer codes are an internal detail of
models and indexes."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from llmrank.errors import InvalidRequestError


@dataclass(frozen=True)
class Item:
    """One catalog item with the text fields used for embeddings and prompts."""

    item_id: str
    title: str = ""
    year: int | None = None
    genres: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    description: str = ""
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class User:
    user_id: str
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Filters:
    """Business filters applied inside retrieval (before ranking), so that k results survive.

    ``attributes`` keeps items whose attribute (or ``genre``) value is in the given set.
    """

    allow: frozenset[str] | None = None
    deny: frozenset[str] = frozenset()
    attributes: Mapping[str, frozenset[str]] = field(default_factory=dict)
    exclude_seen: bool = True

    def validate(self) -> Filters:
        """Itself, or InvalidRequestError. A bare string is a set of characters to ``in`` and
        ``frozenset``: allow="15" kept "1" and "5", attributes={"genre": "comedy"} nothing."""
        for name, value in (("allow", self.allow), ("deny", self.deny)):
            if isinstance(value, (str, bytes)):
                raise InvalidRequestError(f"Filters.{name} must be a set of item ids, got the "
                                          f"string {value!r}")
        for key, values in self.attributes.items():
            if isinstance(values, (str, bytes)):
                raise InvalidRequestError(f"Filters.attributes[{key!r}] must be a set of values, "
                                          f"got the string {values!r}")
        return self

    def is_empty(self) -> bool:
        return self.allow is None and not self.deny and not self.attributes


@dataclass
class RecRequest:
    """What a caller asks for: a ``user_id``, a ``history``, a ``text``, or a mix; a known
    user with an explicit history uses the explicit history. With none of them (an anonymous
    visitor) the answer is the cold-start list: the most popular items."""

    user_id: str | None = None
    history: list[str] | None = None
    text: str | None = None
    k: int = 10
    # retrieved for the reranker; None: the config's retriever.n_candidates. The Recommender
    # raises it to k when below, so k is never cut
    n_candidates: int | None = None
    filters: Filters = field(default_factory=Filters)
    explain: bool = False
    # let the configured policy explore; None: it does when the config names a policy other
    # than greedy (False serves the greedy list with the same logging)
    explore: bool | None = None
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def validate(self) -> RecRequest:
        """Itself, or InvalidRequestError for what cannot be served (the Recommender checks
        every request): k <= 0 returned nothing and a negative k sliced the list from its end
        (k=-2 served all but the last two candidates); an empty text fell back to popular items."""
        for name, value in (("k", self.k), ("n_candidates", self.n_candidates)):
            if value is None and name == "n_candidates":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidRequestError(f"{name} must be a positive integer, got {value!r}")
        for name, text in (("user_id", self.user_id), ("text", self.text),
                           ("request_id", self.request_id)):
            if text is None and name != "request_id":
                continue
            if not isinstance(text, str) or not text.strip():
                raise InvalidRequestError(f"{name} must be a non-empty string, got {text!r}")
        if self.history is not None and (isinstance(self.history, (str, bytes))
                                         or not all(isinstance(i, str) for i in self.history)):
            raise InvalidRequestError("history must be a list of item id strings")
        if not isinstance(self.filters, Filters):
            raise InvalidRequestError(f"filters must be a Filters, got {type(self.filters).__name__}")
        self.filters.validate()
        return self


@dataclass(frozen=True)
class Candidate:
    """A retrieved item with its retrieval score (inner product in the index)."""

    item_id: str
    score: float
    source: str = "retriever"


@dataclass
class RankedItem:
    """One shown item. ``score`` is the final ranking score; the parts are kept for traces."""

    item_id: str
    score: float
    position: int
    retrieval_score: float | None = None
    rerank_score: float | None = None
    propensity: float | None = None
    explanation: str | None = None
    title: str = ""


@dataclass
class LLMCall:
    """Trace of one LLM call: what ran, with which template, and what it cost."""

    stage: str
    backend: str
    model: str
    adapter: str | None
    template: str
    template_version: str
    prompt_tokens: int
    seconds: float
    n_prompts: int = 1


@dataclass
class Trace:
    stage_seconds: dict[str, float] = field(default_factory=dict)
    llm_calls: list[LLMCall] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class RecResponse:
    request_id: str
    user_id: str | None
    items: list[RankedItem]
    trace: Trace = field(default_factory=Trace)
    policy: str = "greedy"

    def item_ids(self) -> list[str]:
        return [it.item_id for it in self.items]

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)
