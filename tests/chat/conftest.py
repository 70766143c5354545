"""Shared pieces of the chat tests: a small Recommender over the embedded catalog (fake LLM,
hashing embedder) and a scripted chat model that emits real LangChain tool calls."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from llmrank.llm.fake import FakeLLM
from llmrank.recommender import Recommender

os.environ.setdefault("HF_HUB_OFFLINE", "1")
CFG: dict[str, Any] = {"reranker": {"backend": "fake"}, "embedder": {"backend": "hashing", "cache": False}}

Step = AIMessage | Callable[[list[BaseMessage]], AIMessage]


class ScriptedChatModel(BaseChatModel):
    """Plays ``steps`` in order, one per model call; a step may read the messages so far
    (e.g. take an item id from the last tool result). Records what it was bound to."""

    steps: list[Any]
    calls: int = 0
    bound: list[str] = []

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


@pytest.fixture(scope="session")
def catalog_parts():
    """Dataset and retriever of the embedded catalog, built once."""
    rec = Recommender.from_config(CFG, llm=FakeLLM())
    return rec.dataset, rec.retriever


def make_rec(catalog_parts, **cfg: Any) -> Recommender:
    ds, retriever = catalog_parts
    return Recommender.from_config({**CFG, **cfg}, dataset=ds, retriever=retriever, llm=FakeLLM())


@pytest.fixture
def rec_factory(catalog_parts) -> Callable[..., Recommender]:
    """Recommenders over the shared catalog parts, with config sections as keywords."""
    return lambda **cfg: make_rec(catalog_parts, **cfg)


@pytest.fixture
def rec(catalog_parts, tmp_path) -> Recommender:
    return make_rec(catalog_parts, feedback={"path": str(tmp_path / "fb.sqlite")})
