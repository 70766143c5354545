"""What an OpenAI-compatible completions response says: its choices in prompt order, and the
log-probs of the label tokens in one choice. A label the server did not return (it sent only
its top-N tokens) gets a floor: no more than the smallest returned log-prob, nor than an
equal share of the probability mass the top-N leave. Anything that is not what the API
promises raises ModelError.

Two shapes are read: the completions API's own (``logprobs.top_logprobs`` a list of
{token: log-prob} maps, vLLM, SGLang) and the chat-completions shape llama.cpp's server also
uses for completions (``logprobs.content`` a list of {id, token, logprob, top_logprobs: [...]}
objects; an entry's id is matched as ``token_id:<id>``). llama.cpp answers a request of several
prompts with a JSON array of single-choice responses; their choices are taken together."""

from __future__ import annotations

import math
from typing import Any

from llmrank.errors import ModelError
from llmrank.llm.logprobs import FLOOR, clip_logprob, missing_label_floor


def completion_choices(data: Any, n: int) -> list[dict[str, Any]]:
    """The n choices of a completions response, by their index (garbage -> ModelError)."""
    if isinstance(data, list) and data and all(isinstance(d, dict) and isinstance(d.get("choices"), list)
                                                for d in data):
        data = {"choices": [ch for d in data for ch in d["choices"]]}  # llama.cpp, several prompts
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
    entries = _content_entries(lp.get("content")) if "top_logprobs" not in lp else None
    if entries is None:
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


def _content_entries(content: Any) -> dict[str, Any] | None:
    """{key: log-prob} of the first position of a chat-shaped ``logprobs.content`` list (its
    top_logprobs, then the sampled token itself), keyed ``token_id:<id>`` where an entry names
    its id, else by its text; None when ``content`` is not that shape."""
    if not isinstance(content, list) or not content or not isinstance(content[0], dict):
        return None
    first = content[0]
    top = first.get("top_logprobs")
    if not isinstance(top, list) or not all(isinstance(t, dict) for t in top):
        return None
    entries: dict[str, Any] = {}
    for entry in [*top, first]:  # the sampled token counts when it is not among the top
        tid, token = entry.get("id"), entry.get("token")
        if isinstance(tid, int) and not isinstance(tid, bool):
            key = f"token_id:{tid}"
        elif isinstance(token, str):
            key = token
        else:
            continue
        entries.setdefault(key, entry.get("logprob"))
    return entries or None
