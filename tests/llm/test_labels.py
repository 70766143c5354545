from __future__ import annotations

import pytest

from llmrank.errors import ModelError, PromptError
from llmrank.llm.hf_tokenizer import prompt_tail
from llmrank.llm.labels import continuation, label_token_ids, make_labels


def test_make_labels():
    assert make_labels(3) == ["A", "B", "C"]
    with pytest.raises(ValueError):
        make_labels(27)


def test_label_token_ids_checks_single_distinct_tokens():
    vocab = {"Answer:": [1, 2], "Answer: A": [1, 2, 10], "Answer: B": [1, 2, 11],
             "Answer: C": [1, 2, 11], "Answer: D": [1, 2, 12, 13], "Answer: E": [1, 99]}
    enc = vocab.__getitem__
    assert label_token_ids(enc, [" A", " B"]) == [10, 11]
    with pytest.raises(ModelError, match="share token ids"):
        label_token_ids(enc, [" B", " C"])
    with pytest.raises(ModelError, match="not a single token"):
        label_token_ids(enc, [" D"])
    with pytest.raises(ModelError, match="not a single token"):
        label_token_ids(enc, [" E"])  # merges with the context


def test_tiny_tokenizer_labels_are_single_tokens(tiny_llm):
    ids = tiny_llm.label_ids([continuation(x) for x in make_labels(26)])
    assert len(set(ids)) == 26


def test_a_context_ending_in_whitespace_is_refused():
    """' A' after 'is: ' tokenises as one more token, so the single-token check passes, but the
    model would emit 'A' there: the label score would be of the wrong token."""
    vocab = {"The answer is: ": [1, 2, 3], "The answer is:  A": [1, 2, 3, 10]}
    with pytest.raises(PromptError, match="whitespace"):
        label_token_ids(vocab.__getitem__, [" A"], "The answer is: ")
    with pytest.raises(PromptError, match="whitespace"):
        label_token_ids(vocab.__getitem__, [" A"], "<|im_start|>assistant\n")


def test_prompt_tail_is_the_answer_line():
    assert prompt_tail("System: x\n<|im_start|>assistant\nAnswer:") == "Answer:"
    assert prompt_tail("<|im_end|>\n<|im_start|>assistant\n") == "<|im_start|>assistant\n"
    assert prompt_tail("Pick one. Answer:") == "Pick one. Answer:"
    assert len(prompt_tail("word " * 100 + "Answer:")) == 64
