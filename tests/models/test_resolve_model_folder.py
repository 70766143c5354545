"""What ``resolve_model`` takes as a local model folder."""

from __future__ import annotations

import pytest

from llmrank.errors import ModelError
from llmrank.models import resolve


@pytest.fixture
def home(monkeypatch, tmp_path):
    monkeypatch.setenv("LLMRANK_HOME", str(tmp_path / "home"))
    return tmp_path


@pytest.mark.parametrize("content", [{}, {"notes.txt": "x"}])
def test_a_folder_without_a_model_is_not_a_model(home, content):
    """An empty folder (or one with no config.json) came back as a local model: `models path`
    reported it as one, and a backend handed it to from_pretrained."""
    folder = home / "empty"
    folder.mkdir()
    for name, text in content.items():
        (folder / name).write_text(text)
    with pytest.raises(ModelError, match=r"empty.*not a model.*config\.json"):
        resolve.resolve_model(str(folder))
    named = resolve.models_dir() / "stray"
    named.mkdir(parents=True)
    with pytest.raises(ModelError, match=r"stray.*not a model"):
        resolve.resolve_model("stray")


@pytest.mark.parametrize("marker", ["config.json", "adapter_config.json"])
def test_a_model_or_adapter_folder_still_resolves_to_itself(home, marker):
    folder = home / "m"
    folder.mkdir()
    (folder / marker).write_text("{}")
    assert resolve.resolve_model(str(folder)) == str(folder)
