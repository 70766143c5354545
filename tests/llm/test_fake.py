from __future__ import annotations

import numpy as np

from llmrank.llm.base import LLM, GenerationConfig
from llmrank.llm.fake import FakeLLM


def test_fake_is_an_llm_and_deterministic():
    llm = FakeLLM(generations=["x", "y"])
    assert isinstance(llm, LLM)
    a = llm.label_logprobs(["p1", "p2"], [" A", " B"])
    np.testing.assert_array_equal(a, FakeLLM().label_logprobs(["p1", "p2"], [" A", " B"]))
    assert llm.generate(["a", "b", "c"], GenerationConfig()) == ["x", "y", "x"]
    assert llm.calls == [("label_logprobs", 2), ("generate", 3)]
