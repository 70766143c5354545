"""Tokenizer helpers shared by the backends that hold a Hugging Face tokenizer (transformers,
vllm, and openai when a local tokenizer is given): chat formatting, token counting and label
token ids, so that all of them build byte-identical prompts."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from llmrank.llm.labels import label_token_ids
from llmrank.prompts.chat import ChatMessage, hf_format_chat

_ENCODE_CACHE = 512  # prompts remembered per backend
_LABEL_CACHE = 256  # (label set, prompt ending) checks remembered per backend
_TAIL_CHARS = 64


class HFTokenizerMixin:
    tokenizer: Any
    answer_context: str = "Answer:"
    _label_cache: dict[tuple[str, ...], list[int]]

    def format_chat(self, messages: Sequence[ChatMessage], *, add_generation_prompt: bool = True) -> str:
        return hf_format_chat(self.tokenizer, messages, add_generation_prompt=add_generation_prompt)

    def count_tokens(self, text: str) -> int:
        return len(self.encode(text))

    def encode(self, text: str) -> list[int]:
        """Token ids, memoised for recent texts: the prompt builder counts a prompt's tokens
        and the backend then scores the very same string."""
        cache: OrderedDict[str, list[int]] = self.__dict__.setdefault("_encode_cache", OrderedDict())
        ids = cache.get(text)
        if ids is None:
            ids = list(self.tokenizer.encode(text, add_special_tokens=False))
            cache[text] = ids
            if len(cache) > _ENCODE_CACHE:
                cache.popitem(last=False)
        else:
            cache.move_to_end(text)
        return list(ids)

    def prompt_ids(self, prompt: str, limit: int) -> list[int]:
        """Token ids of a prompt the backend will send; PromptError when empty or over ``limit``
        (callers shorten prompts first, so this is the last guard, not the truncation)."""
        from llmrank.errors import PromptError

        ids = self.encode(prompt)
        if not ids:
            raise PromptError("empty prompt")
        if len(ids) > limit:
            raise PromptError(f"prompt of {len(ids)} tokens exceeds the limit of {limit}")
        return ids

    def label_ids(self, labels: Sequence[str], context: str | None = None) -> list[int]:
        """Token ids of label continuations after ``context`` (default ``answer_context``),
        checked once per (label set, context) (cached)."""
        context = self.answer_context if context is None else context
        key = (tuple(labels), context)
        cache = self.__dict__.setdefault("_label_cache", {})
        if key not in cache:
            if len(cache) >= _LABEL_CACHE:
                cache.clear()
            cache[key] = label_token_ids(self.encode, labels, context)
        return list(cache[key])

    def prompt_label_ids(self, prompts: Sequence[str], labels: Sequence[str]) -> list[int]:
        """Label token ids checked against how ``prompts`` really end (their last line: the
        template's answer prefix), not a fixed "Answer:", so a prefix after which the labels
        are not what the model would emit fails loudly instead of scoring the wrong token."""
        tails = list(dict.fromkeys(prompt_tail(p) for p in prompts)) or [self.answer_context]
        found = {tuple(self.label_ids(labels, tail)) for tail in tails}
        if len(found) > 1:
            from llmrank.errors import PromptError

            raise PromptError(f"labels {list(labels)} are different tokens after the prompt endings "
                              f"{tails}; score prompts of one template together")
        return list(found.pop())

    def special_tokens(self) -> list[str]:
        return [t for t in getattr(self.tokenizer, "all_special_tokens", []) if t]


def prompt_tail(prompt: str) -> str:
    """The text the label tokens follow: the prompt's last line (after a chat template's
    assistant header that is the answer prefix), at most its last 64 characters. A prompt
    ending in a newline keeps the line before it, so the trailing whitespace is seen."""
    tail = prompt[-_TAIL_CHARS:]
    cut = tail.rfind("\n", 0, len(tail) - 1)
    return tail[cut + 1:] if cut >= 0 else tail


def load_tokenizer(path: str, *, trust_remote_code: bool = False) -> Any:
    """An HF tokenizer set up for left-padded batches (the next token sits at the end)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token or tok.unk_token
    return tok


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    cut = len(text)
    for s in stop:
        if s and (i := text.find(s)) >= 0:
            cut = min(cut, i)
    return text[:cut]
