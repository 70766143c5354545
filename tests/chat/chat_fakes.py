"""Test doubles for the chat tests: a scripted chat model that emits real LangChain tool
calls, and the config of a small Recommender (fake LLM, hashing embedder, embedded catalog).
A uniquely named module (not conftest) so that test files can import it."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import Field

os.environ.setdefault("HF_HUB_OFFLINE", "1")
CFG: dict[str, Any] = {"reranker": {"backend": "fake"}, "embedder": {"backend": "hashing", "cache": False}}

Step = AIMessage | Callable[[list[BaseMessage]], AIMessage]


class ScriptedChatModel(BaseChatModel):
    """Plays ``steps`` in order, one per model call; a step may read the messages so far
    (e.g. take an item id from the last tool result). Records what it was bound to."""

    steps: list[Any]
    calls: int = 0
    bound: list[str] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Any:
        self.bound = [getattr(t, "name", str(t)) for t in tools]
        return self

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        if self.calls >= len(self.steps):
            raise AssertionError(f"script exhausted after {self.calls} model calls")
        step = self.steps[self.calls]
        self.calls += 1
        # a fresh object per call: LangGraph assigns message ids in place
        msg = step(messages) if callable(step) else step.model_copy(deep=True)
        return ChatResult(generations=[ChatGeneration(message=msg)])


def call(name: str, **args: Any) -> Callable[[list[BaseMessage]], AIMessage]:
    """A step that calls one tool (a fresh call id each time it plays)."""
    return lambda messages: AIMessage("", tool_calls=[{"name": name, "args": args,
                                                       "id": "call_" + uuid.uuid4().hex[:12]}])


def last_tool(messages: Sequence[BaseMessage]) -> ToolMessage:
    return [m for m in messages if isinstance(m, ToolMessage)][-1]
