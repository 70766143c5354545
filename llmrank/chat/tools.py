"""LangChain tools over a Recommender: the only way a chat model reaches the catalog.

Why tools are the trust boundary: every item id a tool returns comes from the Recommender
(catalog items only), and every item id a tool accepts is checked against the catalog before
anything happens. The session (session.py) records which ids the tools offered, so the
answer's item ids can be validated against what the tools really returned, not against what
the model wrote. Catalog text in tool results is escaped (quotes, tags, role markers) so an
item titled "Ignore previous instructions" is shown to the model as data.

A tool's expected failure (unknown item, unknown user, no feedback store) reaches the model as
an error message it can react to (ToolException), not as a crash of the turn."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.tools import BaseTool, StructuredTool, ToolException
from pydantic import BaseModel, ConfigDict, Field, field_validator

from llmrank.errors import LlmrankError
from llmrank.prompts.escape import escape_data
from llmrank.records import Item, RecRequest

if TYPE_CHECKING:
    from llmrank.recommender import Recommender

LISTING_TOOLS = ("recommend_for_user", "search_items", "similar_items")


@dataclass
class SessionState:
    """What the tools know about the conversation: whose session it is and what was shown."""

    user_id: str | None = None
    history: list[str] | None = None  # an anonymous user's explicit history
    shown: dict[str, str | None] = field(default_factory=dict)  # item id -> latest request id that showed it
    offered: list[str] = field(default_factory=list)  # ids listed by tools in the current turn
    rejected: list[str] = field(default_factory=list)  # ids the model passed that were refused
    feedback: list[str] = field(default_factory=list)  # event ids recorded in this session

    def start_turn(self) -> None:
        self.offered.clear()
        self.rejected.clear()

    def offer(self, ids: Sequence[str], request_id: str | None) -> None:
        """Record a listing. Feedback on an item goes to the latest impression that showed it
        (what the user is reacting to); a listing without one (similar_items) keeps it."""
        for i in ids:
            if request_id is not None or i not in self.shown:
                self.shown[i] = request_id
            if i not in self.offered:
                self.offered.append(i)


class _Args(BaseModel):
    # an id or a query written as a JSON number (MovieLens lists '[318] "..."', a film is
    # called 1984) is the string the tool needs, not a wrong type the model must retry
    model_config = ConfigDict(coerce_numbers_to_str=True)


class _K(_Args):
    k: int = Field(5, ge=1, le=20, description="how many items to return")


class RecommendArgs(_K):
    query: str | None = Field(None, max_length=500,
                              description="optional wish in free text, e.g. 'something light and funny'")

    @field_validator("query")
    @classmethod
    def _no_wish(cls, v: str | None) -> str | None:
        # models fill optional arguments with "": that is no wish, not an invalid request
        return v if v is None or v.strip() else None


class SearchArgs(_K):
    query: str = Field(..., min_length=1, max_length=500, description="what to look for, in free text")

    @field_validator("query")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must contain words to search for")
        return v


class ItemArgs(_Args):
    item_id: str = Field(..., description="an item id exactly as a tool returned it, e.g. the text inside [ ]")


class SimilarArgs(ItemArgs, _K):
    pass


class FeedbackArgs(ItemArgs):
    kind: Literal["click", "rating", "skip"] = Field(
        "click", description="click = the user liked or chose it, skip = not interested, rating = a score")
    value: float | None = Field(None, description="the rating (only for kind='rating')")


def item_line(item: Item, n: int | None = None) -> str:
    """One catalog item as the model sees it: ``[id] "title" (year; genres)``, escaped."""
    bits = [str(item.year)] if item.year else []
    if item.genres:
        bits.append(", ".join(escape_data(g, limit=40) for g in item.genres[:4]))
    meta = f" ({'; '.join(bits)})" if bits else ""
    prefix = f"{n}. " if n is not None else ""
    return f'{prefix}[{escape_data(item.item_id, limit=64)}] "{escape_data(item.title, limit=160)}"{meta}'


class ChatTools:
    """Builds the five tools over ``recommender`` for one session's ``state``. ``lock`` (the
    server's model lock) serialises recommender calls with other requests. Without one the
    tools still take turns on a lock of their own: the agent runs the calls of one model
    message in parallel threads, and neither the Recommender nor ``state`` is made for that."""

    def __init__(self, recommender: Recommender, state: SessionState,
                 lock: AbstractContextManager[Any] | None = None) -> None:
        self.rec = recommender
        self.state = state
        self.lock: AbstractContextManager[Any] = lock if lock is not None else threading.RLock()

    def _item(self, item_id: str) -> Item:
        item = self.rec.dataset.items.get(str(item_id).strip().strip("[]"))
        if item is None:
            self.state.rejected.append(str(item_id))
            raise ToolException(f"unknown item id {item_id!r}: use an id exactly as a tool returned it")
        return item

    def _listing(self, ids: Sequence[str], request_id: str | None, empty: str) -> tuple[str, list[str]]:
        """The listing's text and ids, recorded in ``state``; call under ``self.lock``."""
        ids = [i for i in ids if i in self.rec.dataset.items]
        self.state.offer(ids, request_id)
        if not ids:
            return empty, []
        lines = [item_line(self.rec.dataset.items[i], n) for n, i in enumerate(ids, 1)]
        return "\n".join(lines), list(ids)

    def _request(self, k: int, text: str | None, *, personal: bool) -> RecRequest:
        st = self.state
        if not personal:
            return RecRequest(user_id=st.user_id, history=[], text=text, k=k, explore=True)
        return RecRequest(user_id=st.user_id, history=st.history, text=text, k=k, explore=True)

    # ---- the tools ---------------------------------------------------------------------
    def recommend_for_user(self, k: int = 5, query: str | None = None) -> tuple[str, list[str]]:
        with self.lock:
            resp = self.rec.recommend(self._request(k, query, personal=True))
            return self._listing(resp.item_ids(), resp.request_id, "no recommendations found")

    def search_items(self, query: str, k: int = 5) -> tuple[str, list[str]]:
        with self.lock:
            resp = self.rec.recommend(self._request(k, query, personal=False))
            return self._listing(resp.item_ids(), resp.request_id,
                                 f"nothing found for {escape_data(query)!r}")

    def explain_item(self, item_id: str) -> tuple[str, list[str]]:
        item = self._item(item_id)
        req = RecRequest(user_id=self.state.user_id, history=self.state.history)
        with self.lock:
            exps = self.rec.explain(req, [item.item_id])
        text = exps[0].text if exps else "no explanation available"
        return f'{item_line(item)}: "{escape_data(text, limit=800)}"', [item.item_id]

    def similar_items(self, item_id: str, k: int = 5) -> tuple[str, list[str]]:
        item = self._item(item_id)
        finder = getattr(self.rec.retriever, "similar_items", None)
        if finder is None:
            raise ToolException("similar_items is not available with this retriever")
        with self.lock:
            found = finder(item.item_id, k=k)
            return self._listing([c.item_id for c in found], None, "no similar items found")

    def record_feedback(self, item_id: str, kind: str = "click", value: float | None = None,
                        ) -> tuple[str, list[str]]:
        from llmrank.feedback.records import FeedbackEvent

        item = self._item(item_id)
        event = FeedbackEvent(user_id=self.state.user_id, item_id=item.item_id, kind=kind,
                              value=value, request_id=self.state.shown.get(item.item_id))
        with self.lock:
            event_id = self.rec.feedback(event)
        self.state.feedback.append(event_id)
        return f"recorded {kind} on [{escape_data(item.item_id)}]", [item.item_id]

    # ---- LangChain wrapping ------------------------------------------------------------
    def tools(self) -> list[BaseTool]:
        specs: list[tuple[Callable[..., tuple[str, list[str]]], type[BaseModel], str]] = [
            (self.recommend_for_user, RecommendArgs,
             "Recommend items for the current user from their history, optionally steered by a wish."),
            (self.search_items, SearchArgs, "Search the catalog with free text (title, genre, mood, plot)."),
            (self.explain_item, ItemArgs, "Explain why an item fits the current user."),
            (self.similar_items, SimilarArgs, "Items similar to a given item."),
            (self.record_feedback, FeedbackArgs,
             "Record the user's reaction to an item (liked/chose it, skipped it, or rated it)."),
        ]
        return [StructuredTool.from_function(
            func=_guard(fn), name=fn.__name__, description=desc, args_schema=schema,
            response_format="content_and_artifact", handle_tool_error=True,
            handle_validation_error=_validation_message,
        ) for fn, schema, desc in specs]


def _guard(fn: Callable[..., tuple[str, list[str]]]) -> Callable[..., tuple[str, list[str]]]:
    """Library errors become ToolExceptions: the model reads the message and can recover."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> tuple[str, list[str]]:
        try:
            return fn(*args, **kwargs)
        except LlmrankError as exc:
            raise ToolException(f"{type(exc).__name__}: {exc}") from exc

    return wrapper


def _validation_message(exc: Exception) -> str:
    """One line naming each bad argument and what is wrong with it (pydantic's first line,
    "1 validation error for SearchArgs", tells the model nothing it can fix). The value
    itself is not echoed: it is untrusted text and the model already has it."""
    errors = getattr(exc, "errors", None)
    details: list[str] = []
    if callable(errors):
        with contextlib.suppress(Exception):
            for err in errors(include_input=False, include_url=False):
                field = ".".join(str(p) for p in err.get("loc", ())) or "arguments"
                details.append(f"{field}: {escape_data(str(err.get('msg', 'invalid')), limit=160)}")
    if not details:
        details.append(escape_data(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, limit=160))
    return "invalid arguments: " + "; ".join(details)


def make_tools(recommender: Recommender, state: SessionState | None = None,
               lock: AbstractContextManager[Any] | None = None) -> list[BaseTool]:
    """The five chat tools over ``recommender`` (a fresh SessionState when none is given)."""
    return ChatTools(recommender, state or SessionState(), lock).tools()
