"""Chat-style recommendation sessions: LangChain tools over a Recommender, a tool-calling
agent (``langchain.agents.create_agent``), and the project's own chat model with Hermes tool
calls for local models.

LangChain is imported only when one of these names is used (``pip install 'llmrank[chat]'``),
so ``import llmrank.chat`` stays light."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmrank.chat.factory import make_chat_model
    from llmrank.chat.model import LocalChatModel
    from llmrank.chat.session import ChatSession, ChatTurn
    from llmrank.chat.tools import SessionState, make_tools

__all__ = ["ChatSession", "ChatTurn", "LocalChatModel", "SessionState", "make_chat_model", "make_tools"]

_WHERE = {
    "ChatSession": "llmrank.chat.session",
    "ChatTurn": "llmrank.chat.session",
    "LocalChatModel": "llmrank.chat.model",
    "SessionState": "llmrank.chat.tools",
    "make_tools": "llmrank.chat.tools",
    "make_chat_model": "llmrank.chat.factory",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'llmrank.chat' has no attribute {name!r}")
    import importlib

    from llmrank._optional import require

    require("langchain", extra="chat")
    return getattr(importlib.import_module(_WHERE[name]), name)
