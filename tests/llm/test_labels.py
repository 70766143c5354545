from __future__ import annotations

import pytest

from llmrank.errors import ModelError
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
