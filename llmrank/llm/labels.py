"""Label tokens of the verbalizer: each label must be one distinct token right after the
answer prefix, or its log-prob would be a prefix's log-prob and labels could collide."""

from __future__ import annotations

import string
from collections.abc import Callable, Sequence

from llmrank.errors import ModelError, PromptError

ALPHABET = tuple(string.ascii_uppercase)


def make_labels(n: int, alphabet: Sequence[str] = ALPHABET) -> list[str]:
    if n > len(alphabet):
        raise ValueError(f"{n} labels requested, the alphabet has {len(alphabet)}")
    return list(alphabet[:n])


def continuation(label: str) -> str:
    """The string the model emits after 'Answer:' to choose ``label`` (leading space)."""
    return " " + label


def _check_no_double_space(context: str, continuations: Sequence[str]) -> None:
    """A context that ends in whitespace, followed by a label that starts with a space, scores
    a token the model would not emit there (" A" after "is: "), and label_token_ids's
    single-token check cannot see it: refuse it."""
    if context[-1:].isspace() and any(c[:1].isspace() for c in continuations):
        raise PromptError(
            f"the prompt ends in whitespace ({context[-20:]!r}) and the labels start with a space: "
            "remove the trailing whitespace from the template's answer_prefix"
        )


def label_token_ids(encode: Callable[[str], list[int]], continuations: Sequence[str],
                    context: str = "Answer:") -> list[int]:
    """Token id of each continuation when it follows ``context``.

    Checks, with the real tokenizer, that ``context + c`` tokenizes as ``context`` plus exactly
    one more token, and that the tokens are distinct. Raises ModelError otherwise, and
    PromptError when ``context`` ends in whitespace before a label that starts with one."""
    _check_no_double_space(context, continuations)
    base = encode(context)
    ids: list[int] = []
    for c in continuations:
        full = encode(context + c)
        if full[: len(base)] != base or len(full) != len(base) + 1:
            raise ModelError(
                f"label continuation {c!r} is not a single token after {context!r} for this "
                "tokenizer; use other labels"
            )
        ids.append(full[-1])
    if len(set(ids)) != len(ids):
        raise ModelError(f"label continuations {list(continuations)} share token ids {ids}")
    return ids
