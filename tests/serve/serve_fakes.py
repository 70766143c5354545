"""Test doubles for the serve tests: a scripted chat model for /chat and the config of a small
Recommender (uniquely named, not conftest, so test files can import it)."""

from __future__ import annotations

import os
import uuid
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

os.environ.setdefault("HF_HUB_OFFLINE", "1")
CFG: dict[str, Any] = {"reranker": {"backend": "fake"}, "embedder": {"backend": "hashing", "cache": False}}


class SearchThenAnswer(BaseChatModel):
    """Each turn: call search_items with the user's message, then name the first result."""

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        last = messages[-1]
        if last.type == "human":
            msg = AIMessage("", tool_calls=[{"name": "search_items", "args": {"query": last.content, "k": 3},
                                             "id": "call_" + uuid.uuid4().hex[:8]}])
        else:
            ids = getattr(last, "artifact", None) or []
            msg = AIMessage(f"Try [{ids[0]}] or [made-up-1]." if ids else "Nothing found.")
        return ChatResult(generations=[ChatGeneration(message=msg)])
