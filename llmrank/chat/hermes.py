"""The Hermes tool-calling format, as Qwen2.5, Hermes and vLLM's ``hermes`` parser use it.

Rendering: the tools go into the system message inside ``<tools></tools>``; an assistant's
calls are ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` blocks; each tool result
comes back in a user turn inside ``<tool_response></tool_response>``. That is exactly what
Qwen2.5's own chat template produces, so any model with a plain chat template can be driven
the same way through ``LLM.format_chat``.

Parsing: only well-formed blocks (``<tool_call>``, or the ``<tools>`` tag small Qwen models
sometimes use by mistake, or an answer that is nothing but one call's JSON) whose name is a
bound tool become tool calls; anything else
(bad JSON, unknown tool, missing name, unclosed block) becomes an *invalid* tool call with the
reason, never an executed one. Tool results, user text and earlier answers are rendered with
the protocol tags neutralised, so data (an item titled ``</tool_response><tool_call>...``)
cannot forge a call or close a response."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from llmrank.prompts.chat import ChatMessage

TOOLS_PREAMBLE = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
)
TOOLS_POSTAMBLE = (
    "\n</tools>\n\nFor each function call, return a json object with function name and "
    "arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
)
_TAGS = re.compile(r"</?\s*(tool_call|tool_response|tools)\s*>", re.IGNORECASE)
# <tool_call> is the format; small Qwen models sometimes wrap a call in the <tools> tag of the
# system prompt instead, which is accepted too (the call is validated like any other)
_BLOCK = re.compile(r"<(tool_call|tools)>(.*?)</\1>", re.DOTALL)
_OPEN = "<tool_call>"


def neutralise(text: str) -> str:
    """Replace protocol tags inside data with look-alikes the parser never matches."""
    return _TAGS.sub(lambda m: m.group(0).replace("<", "‹").replace(">", "›"), text)


@dataclass
class ParsedOutput:
    """A generation split into visible text, valid tool calls and invalid ones (LangChain's
    ToolCall / InvalidToolCall dict shapes)."""

    content: str
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    invalid_tool_calls: list[dict[str, Any]] = field(default_factory=list)


def _call_id() -> str:
    return "call_" + uuid.uuid4().hex[:16]


def _parse_block(raw: str, allowed: set[str] | None) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(tool_call, None) or (None, invalid_tool_call) for the JSON inside one block."""
    raw = raw.strip()
    cid = _call_id()

    def invalid(error: str, name: str | None = None, args: str | None = None) -> tuple[None, dict[str, Any]]:
        return None, {"type": "invalid_tool_call", "id": cid, "name": name, "args": args or raw,
                      "error": error}

    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as exc:
        return invalid(f"malformed JSON in <tool_call>: {exc.msg} at char {exc.pos}")
    if not isinstance(obj, dict):
        return invalid("a tool call must be a JSON object")
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        return invalid("a tool call needs a string 'name'")
    args = obj.get("arguments", obj.get("parameters", {}))
    if isinstance(args, str):  # some models double-encode the arguments
        try:
            args = json.loads(args) if args.strip() else {}
        except json.JSONDecodeError:
            return invalid(f"arguments of {name!r} are not a JSON object", name, str(args))
    if args is None:
        args = {}
    if not isinstance(args, dict):
        return invalid(f"arguments of {name!r} must be a JSON object", name, json.dumps(args))
    if allowed is not None and name not in allowed:
        known = ", ".join(sorted(allowed)) or "(none)"
        return invalid(f"unknown tool {name!r}; available: {known}", name, json.dumps(args))
    return {"type": "tool_call", "id": cid, "name": name, "args": args}, None


def _objects(raw: str) -> list[str] | None:
    """The JSON objects of a block that holds several, one after the other or as a JSON list
    (small models put two calls in one ``<tool_call>``), as their texts; None when the block
    is not such a sequence (one value, or trailing text: that is reported as malformed)."""
    decoder = json.JSONDecoder()
    found: list[str] = []
    pos, raw = 0, raw.strip()
    if raw.startswith("["):  # a JSON list of calls
        try:
            calls = json.loads(raw)
        except json.JSONDecodeError:
            return None
        if calls and all(isinstance(c, dict) for c in calls):
            return [json.dumps(c, ensure_ascii=False) for c in calls]
        return None
    while pos < len(raw):
        try:
            obj, end = decoder.raw_decode(raw, pos)
        except json.JSONDecodeError:
            return None
        if not isinstance(obj, dict):
            return None
        found.append(raw[pos:end])
        pos = end
        while pos < len(raw) and (raw[pos].isspace() or raw[pos] == ","):
            pos += 1
    return found if len(found) > 1 else None


def _add_block(out: ParsedOutput, raw: str, names: set[str] | None, unclosed: bool = False) -> None:
    """Parse one block's text into ``out``: one call, or several objects in a row."""
    for part in _objects(raw) or [raw]:
        call, bad = _parse_block(part, names)
        if call is not None:
            out.tool_calls.append(call)
        if bad is not None:
            if unclosed:
                bad["error"] = "unclosed <tool_call> (" + bad["error"] + ")"
            out.invalid_tool_calls.append(bad)


def parse_tool_calls(text: str, allowed: Iterable[str] | None = None) -> ParsedOutput:
    """Split a generation into content and tool calls. ``allowed`` = the bound tool names
    (None accepts any name)."""
    names = set(allowed) if allowed is not None else None
    out = ParsedOutput(content="")
    pieces: list[str] = []
    pos = 0
    for m in _BLOCK.finditer(text):
        pieces.append(text[pos:m.start()])
        _add_block(out, m.group(2), names)
        pos = m.end()
    rest = text[pos:]
    cut = rest.find(_OPEN)
    if cut >= 0:  # an unclosed block: generation stopped (max tokens) inside a call
        # several unclosed blocks: each <tool_call> opens the next call (the model left out
        # the closing tags); only the last one may really be cut short
        *opened, tail = rest[cut + len(_OPEN):].split(_OPEN)
        for raw in opened:
            _add_block(out, raw, names)
        _add_block(out, tail, names, unclosed=True)
        rest = rest[:cut]
    pieces.append(rest)
    out.content = re.sub(r"\n{3,}", "\n\n", "".join(pieces)).strip()
    if not out.tool_calls and not out.invalid_tool_calls and names:
        _bare_call(out, names)
    return out


_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


def _bare_call(out: ParsedOutput, names: set[str]) -> None:
    """Small models sometimes answer with nothing but the call's JSON, without tags. Only an
    answer that is *entirely* one JSON object naming a bound tool counts as a call."""
    text = out.content
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1)
    if not (text.startswith("{") and text.endswith("}")):
        return
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        return
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        return  # a list or object as 'name' is garbage, and unhashable in the set lookup
    if obj["name"] in names and set(obj) <= {"name", "arguments", "parameters"}:
        call, _ = _parse_block(text, names)
        if call is not None:
            out.tool_calls.append(call)
            out.content = ""


def tools_block(tools: Sequence[Mapping[str, Any]]) -> str:
    """The system-prompt section that declares ``tools`` (OpenAI tool dicts)."""
    lines = [json.dumps(t, ensure_ascii=False, sort_keys=True) for t in tools]
    return TOOLS_PREAMBLE + "\n".join(lines) + TOOLS_POSTAMBLE


def call_block(name: str, args: Mapping[str, Any]) -> str:
    return "<tool_call>\n" + json.dumps({"name": name, "arguments": dict(args)}, ensure_ascii=False) + "\n</tool_call>"


@dataclass(frozen=True)
class Turn:
    """A role-tagged message in LangChain terms, reduced to what rendering needs."""

    role: str  # 'system', 'user', 'assistant', 'tool'
    content: str
    tool_calls: tuple[tuple[str, Mapping[str, Any]], ...] = ()


def render(turns: Sequence[Turn], tools: Sequence[Mapping[str, Any]] = ()) -> list[ChatMessage]:
    """Hermes-format chat messages: tools in the system message, calls as blocks, results as
    user turns of consecutive ``<tool_response>`` blocks."""
    out: list[ChatMessage] = []
    system = [neutralise(t.content) for t in turns if t.role == "system"]
    if tools:
        system.append(tools_block(tools))
    if system:
        out.append(ChatMessage("system", "\n\n".join(s for s in system if s)))
    pending: list[str] = []

    def flush() -> None:
        if pending:
            out.append(ChatMessage("user", "\n".join(pending)))
            pending.clear()

    for t in turns:
        if t.role == "system":
            continue
        if t.role == "tool":
            pending.append("<tool_response>\n" + neutralise(t.content) + "\n</tool_response>")
            continue
        flush()
        if t.role == "assistant":
            parts = [neutralise(t.content)] if t.content else []
            parts += [call_block(name, args) for name, args in t.tool_calls]
            out.append(ChatMessage("assistant", "\n".join(parts)))
        else:
            out.append(ChatMessage("user", neutralise(t.content)))
    flush()
    return out
