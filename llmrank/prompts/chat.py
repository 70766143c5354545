"""Chat messages and the formatting of a message list into the one string a model reads.

Backends with a Hugging Face tokenizer apply the model's own chat template; a plain
formatter serves models without one (and tests)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    content: str


@runtime_checkable
class ChatFormatter(Protocol):
    def format_chat(self, messages: Sequence[ChatMessage], *, add_generation_prompt: bool = True) -> str:
        """The model's prompt string for ``messages``, ending where the assistant speaks."""
        ...


class PlainChatFormatter:
    """'System: ...\\n\\nUser: ...\\n\\nAssistant:' for models without a chat template."""

    def format_chat(self, messages: Sequence[ChatMessage], *, add_generation_prompt: bool = True) -> str:
        parts = [f"{m.role.capitalize()}: {m.content}" for m in messages]
        if add_generation_prompt:
            parts.append("Assistant:")
        return "\n\n".join(parts) + ("\n" if add_generation_prompt else "")


def hf_format_chat(tokenizer: object, messages: Sequence[ChatMessage], *,
                   add_generation_prompt: bool = True) -> str:
    """Apply a Hugging Face tokenizer's chat template, falling back to the plain format when
    the tokenizer has none. Special tokens inside message contents are removed first, so data
    can never close a turn (the template escaping already did this for quoted data)."""
    specials = [t for t in getattr(tokenizer, "all_special_tokens", []) if t] + _control_added_tokens(tokenizer)
    clean = []
    for m in messages:
        content = m.content
        for tok in sorted(set(specials), key=len, reverse=True):
            content = content.replace(tok, " ")
        clean.append(ChatMessage(m.role, content))
    if not getattr(tokenizer, "chat_template", None):
        return PlainChatFormatter().format_chat(clean, add_generation_prompt=add_generation_prompt)
    text = tokenizer.apply_chat_template(  # type: ignore[attr-defined]
        [{"role": m.role, "content": m.content} for m in clean],
        tokenize=False, add_generation_prompt=add_generation_prompt,
    )
    return str(text)


_MARKUP = set("<>[]|")


def _control_added_tokens(tokenizer: object) -> list[str]:
    """Added tokens that can act as control: those marked special, and markup-like ones that
    are not (Qwen2.5's '<tool_call>'). Other added tokens are text (a word or a whitespace run
    added to the vocabulary) and must stay in the prompt."""
    decoder = getattr(tokenizer, "added_tokens_decoder", None)
    if isinstance(decoder, dict):
        entries = [(str(getattr(t, "content", t)), bool(getattr(t, "special", False))) for t in decoder.values()]
    else:
        entries = [(str(t), False) for t in getattr(tokenizer, "added_tokens_encoder", {})]
    return [text for text, special in entries if text and (special or _MARKUP & set(text))]
