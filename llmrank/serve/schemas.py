"""Wire models (pydantic) that mirror llmrank.records for the HTTP API and batch files.

Why separate from records.py: the records are the library's internal dataclasses; these
models are a public, versioned contract with bounds (a client cannot ask for a million items)
and a JSON schema that FastAPI publishes as OpenAPI. They import only pydantic, so the batch
engines read the same request lines as the HTTP API without importing FastAPI."""

from __future__ import annotations

import math
from collections.abc import Container, Sequence
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from llmrank.records import Filters, LLMCall, RankedItem, RecRequest, RecResponse, Trace

MAX_ID = 200  # characters of one id (as user_id)


def _utf8(value: str) -> str:
    """An id must be UTF-8 text: a lone UTF-16 surrogate (half an emoji, which JSON can escape)
    cannot be stored, logged or written back in a response. And a bounded one."""
    if len(value) > MAX_ID:
        raise ValueError(f"an id has at most {MAX_ID} characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid UTF-8 text (a lone surrogate is not)") from None
    return value


ItemId = Annotated[str, AfterValidator(_utf8)]  # the dataset's own id, always a string
MAX_K = 100
MAX_CANDIDATES = 500
MAX_HISTORY = 2000
MAX_TEXT = 2000
MAX_FILTER_IDS = 10_000  # an allow or deny list
MAX_ATTRIBUTES = 50  # attribute filters, and values per attribute: 1000
# one request's body (HTTP) or line (batch files): refused over it before it is read or
# parsed; the bounds above keep a valid request far below it (2,000 history ids and 10,000
# filter ids of 200 characters)
MAX_BODY_BYTES = 8 * 2**20
MAX_POSITION = 10_000  # a slot in a shown list: far beyond any slate, and a bounded integer


def _not_blank(value: str | None) -> str | None:
    """An id or message given as '' or spaces is a client mistake, not a value to store."""
    if value is not None and not value.strip():
        raise ValueError("must not be empty or only whitespace")
    return value


OptionalId = Annotated[str | None, AfterValidator(_not_blank)]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FiltersModel(_Wire):
    """Business filters applied inside retrieval (see llmrank.records.Filters)."""

    allow: list[ItemId] | None = Field(default=None, max_length=MAX_FILTER_IDS,
                                       description="only these items may be shown")
    deny: list[ItemId] = Field(default_factory=list, max_length=MAX_FILTER_IDS,
                               description="never show these items")
    attributes: dict[Annotated[str, Field(max_length=MAX_ID)],
                     Annotated[list[Annotated[str, Field(max_length=MAX_TEXT)]], Field(max_length=1000)]] = Field(
        default_factory=dict, max_length=MAX_ATTRIBUTES, description="attribute (or 'genre') -> allowed values")
    exclude_seen: bool = True

    def to_record(self) -> Filters:
        return Filters(
            allow=frozenset(self.allow) if self.allow is not None else None,
            deny=frozenset(self.deny),
            attributes={k: frozenset(v) for k, v in self.attributes.items()},
            exclude_seen=self.exclude_seen,
        )


class RecRequestModel(_Wire):
    """One recommendation request: a known user, an explicit history, free text, or a mix."""

    user_id: str | None = Field(default=None, max_length=200)
    history: list[ItemId] | None = Field(default=None, max_length=MAX_HISTORY,
                                         description="time-ordered item ids; wins over the stored history")
    text: str | None = Field(default=None, max_length=MAX_TEXT, description="free-text query")
    k: int = Field(default=10, ge=1, le=MAX_K)
    n_candidates: int | None = Field(default=None, ge=1, le=MAX_CANDIDATES,
                                     description="retrieved for the reranker (default: the server "
                                                 "config's retriever.n_candidates)")
    filters: FiltersModel = Field(default_factory=lambda: FiltersModel())
    explain: bool = False
    explore: bool | None = Field(default=None, description="let the configured policy explore "
                                 "(default: when the server's policy is not greedy)")
    request_id: str | None = Field(default=None, max_length=200, description="generated when absent; an idempotency key: a retry under a logged id gets the logged slate back")

    def to_record(self) -> RecRequest:
        req = RecRequest(user_id=self.user_id, history=self.history, text=self.text, k=self.k,
                         n_candidates=self.n_candidates, filters=self.filters.to_record(),
                         explain=self.explain, explore=self.explore)
        if self.request_id:
            req.request_id = self.request_id
        return req


class RerankRequestModel(RecRequestModel):
    """Rerank the given candidates (no retrieval). Ids outside the catalog are dropped and
    listed in the trace notes."""

    candidates: list[ItemId] = Field(..., min_length=1, max_length=MAX_CANDIDATES)


class BatchLineModel(RecRequestModel):
    """One line of a batch request file: a RecRequest, plus ``candidates`` to rerank instead
    of retrieving."""

    candidates: list[ItemId] | None = Field(default=None, min_length=1, max_length=MAX_CANDIDATES)


class RankedItemModel(_Wire):
    item_id: ItemId
    title: str = ""
    score: float | None = Field(default=None, description="final ranking score (null when not finite)")
    position: int
    retrieval_score: float | None = None
    rerank_score: float | None = None
    propensity: float | None = Field(default=None, description="P(policy shows this item here), for OPE")
    explanation: str | None = None


class LLMCallModel(_Wire):
    stage: str
    backend: str
    model: str
    adapter: str | None = None
    template: str
    template_version: str
    prompt_tokens: int
    seconds: float
    n_prompts: int = 1


class TraceModel(_Wire):
    stage_seconds: dict[str, float] = Field(default_factory=dict)
    llm_calls: list[LLMCallModel] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


class RecResponseModel(_Wire):
    request_id: str
    user_id: str | None = None
    items: list[RankedItemModel]
    policy: str = "greedy"
    trace: TraceModel = Field(default_factory=lambda: TraceModel())

    @classmethod
    def from_record(cls, resp: RecResponse) -> RecResponseModel:
        return cls(request_id=resp.request_id, user_id=resp.user_id, policy=resp.policy,
                   items=[_item(it) for it in resp.items], trace=_trace(resp.trace))

    def note_dropped(self, candidates: Sequence[str], catalog: Container[str]) -> RecResponseModel:
        """Say which given candidates are not in the catalog (rerank() drops them), so that
        POST /rerank and batch lines both tell why fewer items came back."""
        dropped = [c for c in dict.fromkeys(candidates) if c not in catalog]
        if dropped:
            self.trace.notes.append(f"dropped {len(dropped)} candidates not in the catalog: "
                                    + ", ".join(dropped[:20]))
        return self


class ExplainRequestModel(_Wire):
    user_id: str | None = Field(default=None, max_length=200)
    history: list[ItemId] | None = Field(default=None, max_length=MAX_HISTORY)
    text: str | None = Field(default=None, max_length=MAX_TEXT)
    item_ids: list[ItemId] = Field(..., min_length=1, max_length=MAX_K)


class ExplanationModel(_Wire):
    item_id: ItemId
    text: str
    source: str = Field(description="'model' (validated generation) or 'fallback' (template)")


class ExplainResponseModel(_Wire):
    explanations: list[ExplanationModel]


class FeedbackRequestModel(_Wire):
    """A click, rating or skip; ``request_id`` ties it to the impression that showed the item."""

    user_id: OptionalId = Field(default=None, max_length=200)
    item_id: ItemId = Field(..., min_length=1, max_length=200)
    kind: Literal["click", "rating", "skip"] = "click"
    value: float | None = None
    request_id: OptionalId = Field(default=None, max_length=200)
    position: int | None = Field(default=None, ge=0, le=MAX_POSITION)
    timestamp: float | None = Field(default=None, description="seconds since the epoch; now when absent")
    event_id: OptionalId = Field(default=None, max_length=200, description="idempotency key; generated when absent")


class FeedbackResponseModel(_Wire):
    event_id: str
    stored: bool = True


class ChatRequestModel(_Wire):
    """One turn of a chat session. Without ``session_id`` a new session starts."""

    message: Annotated[str, AfterValidator(_not_blank)] = Field(..., min_length=1, max_length=4000)
    session_id: OptionalId = Field(default=None, max_length=200)
    user_id: OptionalId = Field(default=None, max_length=200)
    history: list[ItemId] | None = Field(default=None, max_length=MAX_HISTORY,
                                         description="seeds a new anonymous session (ignored afterwards)")


class ToolCallModel(_Wire):
    name: str
    args: dict[str, object] = Field(default_factory=dict)
    ok: bool = True
    error: str | None = None


class ChatItemModel(_Wire):
    item_id: ItemId
    title: str = ""
    request_id: str | None = Field(default=None, description="the impression that showed the item: "
                                   "send it with /feedback on this item")


class ChatResponseModel(_Wire):
    session_id: str
    answer: str
    item_ids: list[ItemId] = Field(description="catalog items the tools returned and the answer recommends")
    items: list[ChatItemModel] = Field(default_factory=list)
    tool_calls: list[ToolCallModel] = Field(default_factory=list)
    rejected_ids: list[str] = Field(default_factory=list,
                                    description="ids the model used or named that no tool returned")


class ErrorModel(_Wire):
    error: str = Field(description="error type, e.g. UnknownUserError")
    message: str
    status: int


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(float(x)) else float(x)


def _item(it: RankedItem) -> RankedItemModel:
    return RankedItemModel(item_id=it.item_id, title=it.title, score=_finite(it.score),
                           position=it.position, retrieval_score=_finite(it.retrieval_score),
                           rerank_score=_finite(it.rerank_score), propensity=_finite(it.propensity),
                           explanation=it.explanation)


def _call(c: LLMCall) -> LLMCallModel:
    return LLMCallModel(stage=c.stage, backend=c.backend, model=c.model, adapter=c.adapter,
                        template=c.template, template_version=c.template_version,
                        prompt_tokens=int(c.prompt_tokens), seconds=float(c.seconds),
                        n_prompts=int(c.n_prompts))


def _trace(t: Trace) -> TraceModel:
    return TraceModel(stage_seconds={k: float(v) for k, v in t.stage_seconds.items()},
                      llm_calls=[_call(c) for c in t.llm_calls], notes=list(t.notes))
