"""Reading completions responses: choices by index, label log-probs with the top-N floor."""

from __future__ import annotations

import math

import pytest

from llmrank.errors import ModelError
from llmrank.llm.logprobs import FLOOR
from llmrank.llm.openai_response import completion_choices, label_row

KEYS = {" A": 0, "token_id:66": 1, " C": 2}  # spellings -> label position


def choice(top, tokens=None, token_logprobs=None):
    lp = {"top_logprobs": [top]}
    if tokens is not None:
        lp |= {"tokens": tokens, "token_logprobs": token_logprobs}
    return {"logprobs": lp}


def test_choices_are_put_in_index_order():
    data = {"choices": [{"index": 1, "text": "b"}, {"index": 0, "text": "a"}, {"text": "c"}]}
    assert [c["text"] for c in completion_choices(data, 3)] == ["a", "b", "c"]  # no index: its position


@pytest.mark.parametrize(("data", "message"), [
    ({"choices": [{}]}, "has 1 choices for 2 prompts"), (["x"], "has no choices for 2 prompts"),
    ({"choices": [{}, "x"]}, "choice is not an object"), ({"choices": [{"index": 0}, {"index": 0}]}, "bad index 0"),
    ({"choices": [{}, {"index": 2}]}, "bad index 2"), ({"choices": [{}, {"index": "1"}]}, "bad index '1'"),
])
def test_bad_choices_raise(data, message):
    with pytest.raises(ModelError, match=message):
        completion_choices(data, 2)


def test_exact_labels_any_spelling_and_clipping():
    row = label_row(choice({" A": -0.5, "token_id:66": -1.5, " C": 0.0005, "x": -1e9}), KEYS, 3)
    assert row == [-0.5, -1.5, 0.0]  # a tiny positive rounding error is clipped to 0


def test_missing_labels_get_the_floor():
    top = {" A": -0.5, "x": -1.0}
    row = label_row(choice(top), KEYS, 3)
    tail = 1 - math.exp(-0.5) - math.exp(-1.0)
    assert row[0] == -0.5 and row[1] == row[2] == pytest.approx(min(-1.0, math.log(tail / 2)))
    # returned mass of 1 or more (rounding) leaves no tail: the floor is still finite, above FLOOR
    assert label_row(choice({" A": 0.0, "x": -1.0}), KEYS, 3)[1] == pytest.approx(math.log(1e-300 / 2))
    assert label_row(choice({" A": -2e4}), KEYS, 3) == [FLOOR, FLOOR, FLOOR]


def test_the_sampled_token_counts_when_not_in_the_top():
    row = label_row(choice({"x": -0.1}, tokens=[" C"], token_logprobs=[-3.0]), KEYS, 3)
    assert row[2] == -3.0 and row[0] == row[1] < -3.0


@pytest.mark.parametrize("bad", [
    {"logprobs": None}, {"logprobs": {"top_logprobs": []}}, {"logprobs": {"top_logprobs": [None]}},
    choice({" A": None}), choice({" A": "high"}), choice({" A": 0.7}), choice({" A": float("nan")}), choice({" A": True}),
])
def test_garbage_raises(bad):
    with pytest.raises(ModelError):
        label_row(bad, KEYS, 3)


IDS = {"token_id:65": 0, "token_id:66": 1, "token_id:67": 2}


def content_choice(top, sampled):
    """llama.cpp's /v1/completions logprobs: a 'content' list of token objects (id, token,
    logprob, top_logprobs: a list of such objects), the chat-completions shape."""
    def entry(tid, text, value):
        return {"id": tid, "token": text, "bytes": list(text.encode()), "logprob": value}

    return {"logprobs": {"content": [{**entry(*sampled), "top_logprobs": [entry(*t) for t in top]}]}}


def test_content_shaped_logprobs_are_read_by_token_id():
    top = [(65, " A", -1.0), (67, " C", -2.0), (9, " B", -1.5)]  # text ' B' but another token
    row = label_row(content_choice(top, (65, " A", -1.0)), IDS, 3)
    tail = 1 - math.exp(-1.0) - math.exp(-2.0) - math.exp(-1.5)
    assert row[0] == -1.0 and row[2] == -2.0
    assert row[1] == pytest.approx(min(-2.0, math.log(tail)))  # floored, not token 9's -1.5
    # the sampled token counts when it is not among the top entries
    assert label_row(content_choice([(9, "x", -0.1)], (66, " B", -4.0)), IDS, 3)[1] == -4.0


def test_a_list_of_single_choice_responses_is_one_response():
    """llama.cpp answers a multi-prompt request with a JSON array of responses, one choice each
    (its index is the prompt's position)."""
    data = [{"choices": [{"index": 1, "text": "b"}]}, {"choices": [{"index": 0, "text": "a"}]}]
    assert [c["text"] for c in completion_choices(data, 2)] == ["a", "b"]
    with pytest.raises(ModelError, match="has 1 choices for 2 prompts"):
        completion_choices(data[:1], 2)
