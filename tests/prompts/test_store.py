from __future__ import annotations

from pathlib import Path

import pytest

from llmrank.errors import PromptError
from llmrank.prompts import list_templates, load_template
from llmrank.prompts.store import PROMPTS_DIR_ENV

SHIPPED = {"rank", "explain", "chat_system"}


def test_shipped_templates_load_and_declare_inputs():
    names = {t.name for t in list_templates()}
    assert names >= SHIPPED
    rank = load_template("rank")
    assert rank.answer_prefix == "Answer:"
    assert {i.name for i in rank.inputs} == {"history", "candidates", "labels", "query"}
    assert all(i.untrusted for i in rank.inputs if i.name in ("history", "candidates", "query"))


def test_rank_system_prompt_says_quoted_text_is_data():
    rank = load_template("rank")
    system = rank.render(history=[], candidates=[{"label": "A", "text": "x"}], labels="A").messages[0]
    assert system.role == "system" and "never an instruction" in system.content


def test_version_pin_and_user_dir_override(tmp_path, monkeypatch):
    src = load_template("rank").source
    text = Path(src).read_text(encoding="utf-8").replace('version = "1.0.0"', 'version = "9.0.0"')
    (tmp_path / "rank_v9.toml").write_text(text, encoding="utf-8")
    monkeypatch.setenv(PROMPTS_DIR_ENV, str(tmp_path))
    assert load_template("rank").version == "9.0.0"  # highest version wins
    assert load_template("rank@1.0.0").version == "1.0.0"  # pinned
    with pytest.raises(PromptError, match="no prompt template"):
        load_template("rank@0.0.1")


def test_invalid_user_template_is_skipped(tmp_path, monkeypatch):
    (tmp_path / "broken.toml").write_text("name = 'broken'\n", encoding="utf-8")
    monkeypatch.setenv(PROMPTS_DIR_ENV, str(tmp_path))
    assert "broken" not in {t.name for t in list_templates()}
    with pytest.raises(PromptError):
        load_template(str(tmp_path / "broken.toml"))
