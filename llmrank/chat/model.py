"""LocalChatModel: a LangChain chat model over an llmrank LLM backend (transformers by default).

Why our own class: ``ChatHuggingFace`` over a local pipeline does not do tool calling. This
one renders the conversation and the bound tools in the Hermes format (hermes.py), applies
the model's chat template through the backend's ``format_chat``, generates, and parses
``<tool_call>`` blocks back into LangChain tool calls. Any backend that implements
``format_chat`` and ``generate`` works (transformers, vllm, the fake backend in tests).

Thread-safety: the backend is shared with the reranker in a server, so generation runs under
the optional ``lock`` (the server's model lock). Sharing also means the reranker's LoRA adapter
may be active (trained to answer one label letter): generation switches to ``adapter`` (None:
the base model, as explanations write by default) and restores the active one afterwards."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict

from llmrank.chat.hermes import Turn, call_block, parse_tool_calls, render
from llmrank.llm.base import GenerationConfig

log = logging.getLogger(__name__)

_ROLES = {"system": "system", "human": "user", "ai": "assistant", "tool": "tool"}


def message_text(msg: BaseMessage) -> str:
    """The text of a message whose content may be a list of content blocks."""
    content = msg.content
    if isinstance(content, str):
        return content
    parts = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict) and block.get("type") == "text":
            parts.append(str(block.get("text", "")))
    return "".join(parts)


def to_turns(messages: Sequence[BaseMessage]) -> list[Turn]:
    turns = []
    for m in messages:
        role = _ROLES.get(m.type, "user")
        calls: tuple[tuple[str, Any], ...] = ()
        if isinstance(m, AIMessage):
            calls = tuple((c["name"], c.get("args", {})) for c in m.tool_calls)
        if isinstance(m, ToolMessage) and m.status == "error":
            turns.append(Turn("tool", "error: " + message_text(m)))
            continue
        turns.append(Turn(role, message_text(m), calls))
    return turns


class LocalChatModel(BaseChatModel):
    """Chat model with Hermes tool calling over ``llm`` (an llmrank LLM backend)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    llm: Any
    max_new_tokens: int = 256
    temperature: float = 0.0
    seed: int = 0
    lock: Any = None
    adapter: str | None = None  # the LoRA adapter chat generates with; None: the base model

    @property
    def _llm_type(self) -> str:
        return "llmrank-local"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"backend": getattr(self.llm, "name", "?"), "model": getattr(self.llm, "model_id", "?"),
                "adapter": self.adapter}

    def bind_tools(self, tools: Sequence[Any], *, tool_choice: str | dict[str, Any] | None = None,
                   **kwargs: Any) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools (LangChain tools, pydantic models, functions or OpenAI dicts)."""
        formatted = [convert_to_openai_tool(t) for t in tools]
        return self.bind(tools=formatted, tool_choice=tool_choice, **kwargs)

    # ---- prompt ------------------------------------------------------------------------
    def _prompt(self, messages: Sequence[BaseMessage], tools: Sequence[dict[str, Any]]) -> str:
        """Rendered prompt, dropping the oldest turns (never the system message or the last
        user turn) until prompt + generation fit the backend's bound."""
        turns = to_turns(messages)
        limit = int(self.llm.max_prompt_tokens()) - self.max_new_tokens
        while True:
            text: str = self.llm.format_chat(render(turns, tools))
            if self.llm.count_tokens(text) <= limit:
                return text
            body = [i for i, t in enumerate(turns) if t.role != "system"]
            users = [i for i in body if turns[i].role == "user"]
            if len(body) <= 1 or len(users) <= 1:
                log.warning("chat prompt exceeds %d tokens even after trimming", limit)
                return text
            # drop everything before the second user turn (one whole exchange)
            turns = [t for i, t in enumerate(turns) if t.role == "system" or i >= users[1]]

    @staticmethod
    def _forced_prefix(tool_choice: Any, names: list[str]) -> str:
        """Text that opens a forced tool call ('any'/'required' or a named tool)."""
        if not names or tool_choice in (None, "auto", "none", False):
            return ""
        if isinstance(tool_choice, dict):
            tool_choice = tool_choice.get("function", {}).get("name") or tool_choice.get("name")
        if isinstance(tool_choice, str) and tool_choice in names:
            return '<tool_call>\n{"name": "' + tool_choice + '", "arguments": '
        return "<tool_call>\n"

    @contextlib.contextmanager
    def _adapter(self) -> Iterator[None]:
        """``self.adapter`` active on the backend while generating (the shared reranker LLM
        may have its ranking adapter active); the one active before is restored."""
        active = getattr(self.llm, "adapter", None)
        if active == self.adapter:
            yield
            return
        self.llm.set_adapter(self.adapter)
        try:
            yield
        finally:
            self.llm.set_adapter(active)

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        tools: list[dict[str, Any]] = list(kwargs.get("tools") or [])
        tool_choice = kwargs.get("tool_choice")
        if tool_choice == "none":
            tools = []
        names = [t["function"]["name"] for t in tools if "function" in t]
        prefix = self._forced_prefix(tool_choice, names)
        prompt = self._prompt(messages, tools) + prefix
        # a model that just called a tool must not go on to imagine the tool's answer
        stops = (*(stop or ()), "<tool_response>") if names else tuple(stop or ())
        config = GenerationConfig(max_new_tokens=self.max_new_tokens, temperature=self.temperature,
                                  seed=self.seed, stop=stops)
        with self.lock if self.lock is not None else contextlib.nullcontext(), self._adapter():
            text = prefix + self.llm.generate([prompt], config)[0]
        parsed = parse_tool_calls(text, names)
        if parsed.invalid_tool_calls:
            log.info("model produced invalid tool calls: %s",
                     [c["error"] for c in parsed.invalid_tool_calls])
        msg = AIMessage(content=parsed.content, tool_calls=parsed.tool_calls,
                        invalid_tool_calls=parsed.invalid_tool_calls,
                        response_metadata={"raw": text, "model": getattr(self.llm, "model_id", "")})
        return ChatResult(generations=[ChatGeneration(message=msg)])


__all__ = ["LocalChatModel", "call_block", "message_text", "to_turns"]
