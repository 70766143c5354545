"""ChatSession: one user's conversation with the recommender through a tool-calling agent.

    session = ChatSession(recommender, chat_model, user_id="u001")
    turn = session.send("something like Rocket Summer but funnier")
    turn.answer, turn.item_ids        # item_ids: catalog items the tools returned, never invented

The agent is ``langchain.agents.create_agent(model, tools, system_prompt=...)`` with the
versioned ``chat_system`` template. The session keeps the messages (trimmed to whole
exchanges), the user id and the items the tools showed. Grounding: the answer's item ids are
the tool-offered items the answer names (by id or title); when it names none, the items the
tools listed in this turn (none when the turn ends without an answer). Ids the model passed
to tools that were refused, or bracketed ids in its answer that no tool returned, are
reported as ``rejected_ids`` and never returned as items."""

from __future__ import annotations

import logging
import re
import sys
import threading
import uuid
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langgraph.errors import GraphRecursionError

from llmrank.chat.model import message_text
from llmrank.chat.tools import ChatTools, SessionState
from llmrank.errors import InvalidRequestError, ModelUnavailableError, UnknownUserError
from llmrank.prompts.escape import escape_data
from llmrank.prompts.store import load_template

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from llmrank.recommender import Recommender

log = logging.getLogger(__name__)
_BRACKETED = re.compile(r"\[([^\[\]\s]{1,64})\]")
# a title set off as one: between quotes, in brackets, or emphasised (Markdown)
_QUOTED = r"(?<=[\"'“”‘’*_\[(]){}(?=[\"'“”‘’*_\])])"


@dataclass(frozen=True)
class ToolCallRecord:
    name: str
    args: dict[str, Any]
    ok: bool = True
    error: str | None = None


@dataclass
class ChatTurn:
    """The result of one user message."""

    session_id: str
    answer: str
    item_ids: list[str]
    titles: dict[str, str] = field(default_factory=dict)
    tool_calls: list[ToolCallRecord] = field(default_factory=list)
    rejected_ids: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # item id -> the request id of the latest impression that showed it (None: not logged);
    # a client passes it with feedback so the click joins that slate
    request_ids: dict[str, str | None] = field(default_factory=dict)


def system_prompt(recommender: Recommender, user_id: str | None, catalog: str | None = None,
                  template: str = "chat_system") -> str:
    """The rendered ``chat_system`` template (catalog and user are escaped as data)."""
    tmpl = load_template(template)
    ds = recommender.dataset
    what = catalog or f"{ds.name}, {ds.n_items} items"
    values: dict[str, Any] = {"catalog": what}
    if user_id:
        values["user"] = user_id
    rendered = tmpl.render(**values)
    return "\n\n".join(m.content for m in rendered.messages if m.role == "system")


def _title_spans(answer: str, candidates: dict[str, str]) -> list[tuple[int, int, str]]:
    """(start, end, id) of every title of ``candidates`` the answer names (whole words,
    titles of 4+ characters, case-insensitive), as written in the catalog or as the tools
    showed it (escaped: quotes become apostrophes). Longer titles win: in "The Lantern Keeper:
    Ashes of Vell" the sequel is named, not also "The Lantern Keeper". Items with the same
    title (a remake) are all named. A title without letters ("1984") counts only set off as a
    title (quoted, bracketed or emphasised): in prose it is a year or a count."""
    low = answer.lower()
    forms: list[tuple[str, str]] = []
    for item_id, title in candidates.items():
        for form in dict.fromkeys((title, escape_data(title, limit=160))):
            if len(form) >= 4:
                forms.append((form.lower(), item_id))
    found: list[tuple[int, int, str]] = []
    for form, item_id in sorted(forms, key=lambda f: -len(f[0])):
        pattern = r"(?<!\w)" + re.escape(form) + r"(?!\w)"
        if not any(ch.isalpha() for ch in form):  # "1984", "2012": in prose a year
            pattern = _QUOTED.format(pattern)
        for t in re.finditer(pattern, low):
            # a longer title around it wins; the same title of another item (a remake) too
            if not any(t.start() < end and start < t.end() and (start, end) != t.span()
                       for start, end, _ in found):
                found.append((t.start(), t.end(), item_id))
    return found


def mentioned(answer: str, candidates: dict[str, str]) -> list[str]:
    """Ids in ``candidates`` (id -> title) that ``answer`` names, in order of first mention:
    as ``[id]``, as a whole-word id, or by title (see ``_title_spans``). A numeric id
    (MovieLens) counts only as ``[id]``: in prose "3" or "1." is a count or a list number, not
    an item. An id inside a longer title that the answer names does not count."""
    spans = _title_spans(answer, candidates)
    first: dict[str, int] = {}
    for start, _, item_id in spans:
        first[item_id] = min(start, first.get(item_id, start))
    for item_id in candidates:
        bare = re.escape(item_id) if not item_id.isdigit() else r"\[" + re.escape(item_id) + r"\]"
        for m in re.finditer(r"(?<![\w-])" + bare + r"(?![\w-])", answer):
            if not any(start <= m.start() and m.end() <= end for start, end, _ in spans):
                first[item_id] = min(m.start(), first.get(item_id, m.start()))
                break
    return sorted(first, key=lambda i: first[i])


def unshown_bracketed(answer: str, shown: dict[str, str]) -> list[str]:
    """``[x]`` in the answer where x is no item the tools showed: an invented id. Brackets
    that belong to a named title ("[REC]") are part of the title, not an id."""
    spans = _title_spans(answer, shown)
    return [m.group(1) for m in _BRACKETED.finditer(answer)
            if m.group(1) not in shown
            and not any(start <= m.start() and m.end() <= end for start, end, _ in spans)]


_NO_ANSWER = "Sorry, I could not finish that request. Could you rephrase it?"


def unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says the chat model's server is down or overloaded (a connection
    error, a timeout, a 429 or 5xx after the client's retries), not that the request or the
    code is wrong. The client libraries are only checked when already imported: a remote chat
    model imported them, and nothing else raises their errors."""
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    openai = sys.modules.get("openai")
    if openai is not None:
        if isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
            return True
        if isinstance(exc, openai.APIStatusError) and (exc.status_code == 429 or exc.status_code >= 500):
            return True
    httpx = sys.modules.get("httpx")
    return httpx is not None and isinstance(exc, httpx.TransportError)


def _invalid_call_result(bad: Mapping[str, Any]) -> ToolMessage:
    """The error a refused tool call (bad JSON, unbound tool, arguments not an object) gives
    back to the model, as the result of that call."""
    error = escape_data(str(bad.get("error") or "unparseable tool call"), limit=300)
    return ToolMessage(f"invalid tool call: {error}. Call one of the listed tools with a JSON object "
                       "of arguments, or answer in plain text.",
                       tool_call_id=str(bad.get("id") or "invalid"), name=str(bad.get("name") or "invalid"),
                       status="error")


class ChatSession:
    """A conversation. Not thread-safe by itself: ``send`` holds the session's own lock, so
    two requests for one session run one after the other."""

    def __init__(self, recommender: Recommender, model: BaseChatModel, *, user_id: str | None = None,
                 history: list[str] | None = None, session_id: str | None = None,
                 lock: AbstractContextManager[Any] | None = None, max_messages: int = 40,
                 catalog: str | None = None, recursion_limit: int = 16,
                 invalid_call_retries: int = 2) -> None:
        if user_id is not None and history is None and not recommender.dataset.has_user(user_id):
            raise UnknownUserError(f"unknown user {user_id!r}: give a known user id or a history")
        from langchain.agents import create_agent

        self.session_id = session_id or uuid.uuid4().hex
        self.recommender = recommender
        self.user_id = user_id
        self.state = SessionState(user_id=user_id, history=history)
        self.tools = ChatTools(recommender, self.state, lock).tools()
        self.system_prompt = system_prompt(recommender, user_id, catalog)
        self.agent = create_agent(model, self.tools, system_prompt=self.system_prompt)
        self.messages: list[BaseMessage] = []
        self.max_messages = max_messages
        self.recursion_limit = recursion_limit
        self.invalid_call_retries = invalid_call_retries
        self._lock = threading.Lock()

    @property
    def shown(self) -> list[str]:
        """Every item the tools showed in this session, in order."""
        return list(self.state.shown)

    def _window(self) -> list[BaseMessage]:
        """The last messages, cut at a user message so tool calls keep their results. A last
        turn longer than the window (many tool calls) is kept as its question and answer:
        cutting inside it would orphan tool results, and dropping it would forget it."""
        msgs = self.messages[-self.max_messages:] if self.max_messages else list(self.messages)
        for i, m in enumerate(msgs):
            if isinstance(m, HumanMessage):
                return msgs[i:]
        asked = [i for i, m in enumerate(self.messages) if isinstance(m, HumanMessage)]
        if not asked:
            return []
        last = self.messages[asked[-1]:]
        answer = last[-1]
        if isinstance(answer, AIMessage) and not answer.tool_calls and not answer.invalid_tool_calls:
            return [last[0], answer]
        return [last[0]]

    def _remember(self, turn: list[BaseMessage]) -> None:
        """Append a turn and keep only the window: older messages never reach the model
        again, and a long-lived session must not grow without bound."""
        self.messages += turn
        self.messages = self._window()

    def send(self, message: str) -> ChatTurn:
        if not isinstance(message, str) or not message.strip():
            # nothing to answer: a model asked to reply to "" invents a request (and the HTTP
            # API refuses it too)
            raise InvalidRequestError(f"a chat message must be non-empty text, got {message!r:.40}")
        with self._lock:
            self.state.start_turn()
            inputs = [*self._window(), HumanMessage(message)]
            messages: list[BaseMessage] = list(inputs)
            try:
                for attempt in range(self.invalid_call_retries + 1):
                    state: Any = {"messages": messages}
                    # streamed: the last state survives a GraphRecursionError (what ran)
                    for values in self.agent.stream(state, config={"recursion_limit": self.recursion_limit},
                                                    stream_mode="values"):
                        messages = list(values["messages"])
                    last = messages[-1] if messages else None
                    # the agent loop ends on a message whose calls all failed to parse: the
                    # model never learns why; tell it (as tool errors) and let it try again
                    if not (isinstance(last, AIMessage) and last.invalid_tool_calls and not last.tool_calls):
                        break
                    if attempt == self.invalid_call_retries:
                        if not message_text(last).strip():
                            messages.append(AIMessage(_NO_ANSWER))
                        break
                    messages += [_invalid_call_result(bad) for bad in last.invalid_tool_calls]
            except GraphRecursionError:
                # the model kept calling tools: answer honestly, keep the session usable
                log.warning("session %s: no answer within %d steps", self.session_id, self.recursion_limit)
                turn = self._turn([AIMessage(_NO_ANSWER)])
                ran = messages[len(inputs):]
                while ran and isinstance(ran[-1], AIMessage):  # calls asked for, never run
                    ran.pop()
                turn.tool_calls = self._turn(ran).tool_calls  # they ran (feedback was stored)
                turn.answer = _NO_ANSWER
                turn.notes.append(f"stopped after {self.recursion_limit} agent steps")
                self._remember([HumanMessage(message), AIMessage(turn.answer)])
                return turn
            except Exception as exc:
                if not unreachable(exc):
                    raise
                # the session is unchanged (this message is not remembered): the client may
                # send it again once the model server is back
                raise ModelUnavailableError(
                    f"the chat model could not answer ({type(exc).__name__}: {exc}); try again later") from exc
            new = messages[len(inputs):]
            self._remember([HumanMessage(message), *new])
            return self._turn(new)

    def _turn(self, new: list[BaseMessage]) -> ChatTurn:
        calls: list[ToolCallRecord] = []
        results = {m.tool_call_id: m for m in new if isinstance(m, ToolMessage)}
        notes: list[str] = []
        for m in new:
            if not isinstance(m, AIMessage):
                continue
            for c in m.tool_calls:
                res = results.get(c.get("id") or "")
                failed = res is not None and res.status == "error"
                calls.append(ToolCallRecord(c["name"], dict(c.get("args", {})), not failed,
                                            message_text(res) if failed and res is not None else None))
            for bad in m.invalid_tool_calls:
                calls.append(ToolCallRecord(str(bad.get("name") or "?"), {}, False, bad.get("error")))
                notes.append(f"invalid tool call: {bad.get('error')}")
        answers = [m for m in new if isinstance(m, AIMessage)]
        answer = message_text(answers[-1]) if answers else ""
        items = self.recommender.dataset.items
        shown = {i: items[i].title for i in self.state.shown if i in items}
        # an answer that names nothing presents the listing; the apology presents nothing
        item_ids = mentioned(answer, shown) or (
            [] if answer == _NO_ANSWER else [i for i in self.state.offered if i in items])
        rejected = list(dict.fromkeys(
            [*self.state.rejected, *unshown_bracketed(answer, shown)]))
        if rejected:
            log.info("session %s: rejected ids %s", self.session_id, rejected)
        return ChatTurn(self.session_id, answer, item_ids, {i: shown[i] for i in item_ids},
                        calls, rejected, notes, {i: self.state.shown.get(i) for i in item_ids})
