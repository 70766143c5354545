"""Config bounds: a number out of range is a ConfigError when the config loads, never a
silent clamp (permutations=0 ran one permutation) or a ValueError deep in a stage."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from llmrank.config import Config, load_config
from llmrank.errors import ConfigError


@pytest.mark.parametrize(("key", "value"), [
    ("reranker.max_labels", 1), ("reranker.max_labels", 27),
    ("reranker.permutations", 0), ("reranker.permutations", -2),
    ("reranker.max_history", -1), ("reranker.batch_size", 0),
    ("reranker.blend_retrieval", 1.5), ("reranker.max_prompt_tokens", 0),
    ("retriever.n_candidates", 0), ("retriever.recency_half_life", 0.0),
    ("embedder.batch_size", 0), ("explain.max_new_tokens", 0), ("data.kcore", -1),
    ("chat.max_messages", 0), ("chat.temperature", -0.1), ("seed", -1),
])
def test_out_of_range_numbers_are_config_errors(key: str, value: float) -> None:
    # the bound on that field, not "Extra inputs are not permitted" for a renamed key
    with pytest.raises(ConfigError, match=rf"{re.escape(key)}: Input should be"):
        load_config(None, {key: value})


@pytest.mark.parametrize(("key", "value"), [
    ("reranker.max_labels", 2), ("reranker.max_labels", 26), ("reranker.max_history", 0),
    ("reranker.blend_retrieval", 1.0), ("retriever.recency_half_life", float("inf")),
])
def test_the_edges_are_allowed(key: str, value: float) -> None:
    section, name = key.split(".")
    assert getattr(getattr(load_config(None, {key: value}), section), name) == value  # kept, not clamped


def test_a_file_with_a_bad_value_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "deploy.yaml"
    path.write_text("reranker:\n  max_labels: 1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"reranker\.max_labels"):
        load_config(path)


def test_defaults_are_in_range() -> None:
    Config.model_validate(Config().model_dump())
