"""What an OpenAI-compatible completions response says: its choices in prompt order, and the
log-probs of the label tokens in one choice. A label the server did not return (it sent only
its top-N tokens) gets a floor: no more than the smallest returned log-prob, nor than an
equal share of the probability mass the top-N leave. Anything that is not what the API
promises raises ModelError."""

from __future__ import annotations

import math
from typing import Any

from llmrank.errors import ModelError
from llmrank.llm.logprobs import FLOOR, clip_logprob, missing_label_floor


def completion_choices(data: Any, n: int) -> list[dict[str, Any]]:
    """The n choices of a completions response, by their index (garbage -> ModelError)."""
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or len(choices) != n:
        got = len(choices) if isinstance(choices, list) else "no"
        raise ModelError(f"completions response has {got} choices for {n} prompts: {str(data)[:200]}")
    out: list[dict[str, Any] | None] = [None] * n
    for pos, ch in enumerate(choices):
        if not isinstance(ch, dict):
            raise ModelError(f"completions choice is not an object: {str(ch)[:200]}")
        idx = ch.get("index", pos)
        if not isinstance(idx, int) or not 0 <= idx < n or out[idx] is not None:
            raise ModelError(f"completions choice has a bad index {idx!r}")
        out[idx] = ch
    return [c for c in out if c is not None]


def label_row(choice: dict[str, Any], keys: dict[str, int], n_labels: int) -> list[float]:
    """Log-probs of the labels from one choice; missing labels get the floor."""
    lp = choice.get("logprobs")
    lp = lp if isinstance(lp, dict) else {}
    top = lp.get("top_logprobs")
    if not isinstance(top, list) or not top or not isinstance(top[0], dict):
        raise ModelError("completions choice carries no top_logprobs: does the server "
                         f"support logprobs? {str(choice)[:200]}")
    entries = dict(top[0])
    tokens, token_lps = lp.get("tokens"), lp.get("token_logprobs")
    if isinstance(tokens, list) and isinstance(token_lps, list) and tokens and token_lps:
        entries.setdefault(str(tokens[0]), token_lps[0])  # the sampled token
    returned: list[float] = []
    found: dict[int, float] = {}
    for key, value in entries.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or value > 1e-3:
            raise ModelError(f"completions returned a log-prob that is not one: {key!r}: {value!r}")
        v = clip_logprob(value)
        returned.append(v)
        j = keys.get(str(key))
        if j is not None:
            found[j] = max(v, found.get(j, FLOOR))
    if not returned:
        raise ModelError("completions returned no usable log-probs")
    floor = missing_label_floor(returned, n_labels - len(found))
    return [found.get(j, floor) for j in range(n_labels)]
