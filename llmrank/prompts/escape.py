"""Neutralise untrusted text (item titles, descriptions, user free text) before it enters a
prompt, so that catalog data can never pose as prompt structure.

Every prompt wraps data in straight double quotes on one line. Inside data we therefore
remove what could close the quotes, start a new line, fake a chat role, or fake the answer
slot: the text keeps its meaning for the model, but loses its power to be an instruction.
The system prompt also says that quoted text is data (defence in depth)."""

from __future__ import annotations

import re
from collections.abc import Iterable

# chat-template special tokens of common model families, and generic <|...|> markers
_SPECIAL = re.compile(
    r"<\|[^|<>]{0,40}\|>|</?s>|\[/?INST\]|<</?SYS>>|<start_of_turn>|<end_of_turn>"
    r"|<bos>|<eos>|<pad>|\[/?(?:SYSTEM|USER|ASSISTANT)(?:_PROMPT)?\]",
    re.IGNORECASE,
)
# "System:", "### Assistant:", "Answer:" at any position: a role or answer-slot marker
_ROLE = re.compile(
    r"(?:#{1,6}\s*)?\b(system|assistant|user|human|ai|answer|instruction|response)\s*:",
    re.IGNORECASE,
)
# characters that could close our delimiters or open markup
_TRANSLATE = str.maketrans({
    '"': "'", "“": "'", "”": "'", "„": "'", "«": "'", "»": "'", "`": "'",
    "<": "‹", ">": "›", "{": "(", "}": ")", "\\": "/",
})
_WS = re.compile(r"\s+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


def escape_data(text: str, extra_specials: Iterable[str] = (), limit: int | None = 600) -> str:
    """Return ``text`` safe to place inside double quotes of a prompt: one line, no quote or
    tag characters, no chat-role or answer markers, no special tokens of the tokenizer
    (``extra_specials``), at most ``limit`` characters."""
    text = _CONTROL.sub(" ", str(text))
    for tok in sorted(set(extra_specials), key=len, reverse=True):
        if tok:
            text = text.replace(tok, " ")
    text = _SPECIAL.sub(" ", text)
    text = text.translate(_TRANSLATE)
    text = _ROLE.sub(lambda m: m.group(1) + " -", text)
    text = _WS.sub(" ", text).strip()
    if limit is not None and len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def escape_tree(value: object, extra_specials: Iterable[str] = ()) -> object:
    """Apply :func:`escape_data` to every string inside lists, tuples and mappings."""
    specials = tuple(extra_specials)
    if isinstance(value, str):
        return escape_data(value, specials)
    if isinstance(value, dict):
        return {k: escape_tree(v, specials) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [escape_tree(v, specials) for v in value]
    return value
