"""``llmrank.config``: where llmrank keeps its files, and values as the CLI's ``--set`` and YAML
give them."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmrank.config import llmrank_home


def test_home_expands_the_tilde_and_ignores_an_empty_variable(tmp_path: Path, monkeypatch) -> None:
    """``LLMRANK_HOME="~/llm"`` (quoted, or from an env file) made a folder literally named '~'
    in the working directory, and ``LLMRANK_HOME=`` put every model and index in the cwd."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("LLMRANK_HOME", "~/llm")
    assert llmrank_home() == tmp_path / "llm"
    monkeypatch.setenv("LLMRANK_HOME", "")
    assert llmrank_home() == tmp_path / ".cache" / "llmrank"


@pytest.mark.parametrize("value", ["", "  "])
def test_home_unset_is_the_user_cache(tmp_path: Path, monkeypatch, value: str) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("LLMRANK_HOME", value)
    assert llmrank_home().is_absolute()
