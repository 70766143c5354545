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


def test_a_malformed_user_template_does_not_break_the_others(tmp_path, monkeypatch):
    (tmp_path / "shape.toml").write_text(
        'name = "rank"\nversion = "9.0.0"\ninputs = ["history"]\nmessages = []\n', encoding="utf-8")
    monkeypatch.setenv(PROMPTS_DIR_ENV, str(tmp_path))
    assert load_template("rank").version == "1.0.0"
    with pytest.raises(PromptError, match=r"shape\.toml"):
        load_template(str(tmp_path / "shape.toml"))


def test_a_template_that_is_not_utf8_is_skipped_and_a_prompt_error_naming_it(tmp_path, monkeypatch):
    """A .toml in a user dir that is not UTF-8 text raised UnicodeDecodeError out of
    list_templates (every command that loads a template) and out of load_template(path)."""
    (tmp_path / "latin1.toml").write_bytes("name = 'caf\u00e9'\n".encode("latin-1"))
    monkeypatch.setenv(PROMPTS_DIR_ENV, str(tmp_path))
    assert load_template("rank").version == "1.0.0"
    with pytest.raises(PromptError, match=r"latin1\.toml.*UTF-8"):
        load_template(str(tmp_path / "latin1.toml"))


def test_an_installed_wheel_does_not_search_the_folder_beside_the_package(tmp_path, monkeypatch):
    """Installed, ``parents[2]`` of the store is site-packages: its ``prompts/`` belongs to some
    other distribution. The source tree is only the fallback of a checkout."""
    from llmrank.prompts import store

    wheel, beside = tmp_path / "site" / "llmrank" / "_prompts", tmp_path / "site" / "prompts"
    wheel.mkdir(parents=True)
    beside.mkdir()
    monkeypatch.delenv(PROMPTS_DIR_ENV, raising=False)
    monkeypatch.setattr(store, "_packaged_dirs", lambda: [wheel])
    monkeypatch.setattr(store, "_SOURCE_TREE", beside)
    assert store.template_dirs() == [wheel]
    monkeypatch.setattr(store, "_packaged_dirs", lambda: [])  # a checkout: the source tree
    assert store.template_dirs() == [beside]


def test_versions_compare_as_versions_and_a_pre_release_below_its_release(tmp_path, monkeypatch):
    text = Path(load_template("rank").source).read_text(encoding="utf-8")
    for version in ("1.9.0", "1.10.0", "2.0.0-rc1"):
        (tmp_path / f"rank_{version}.toml").write_text(
            text.replace('version = "1.0.0"', f'version = "{version}"'), encoding="utf-8")
    monkeypatch.setenv(PROMPTS_DIR_ENV, str(tmp_path))
    assert load_template("rank").version == "2.0.0-rc1"  # the only 2.x
    (tmp_path / "rank_2.0.0.toml").write_text(text.replace('version = "1.0.0"', 'version = "2.0.0"'),
                                              encoding="utf-8")
    assert load_template("rank").version == "2.0.0"
    (tmp_path / "rank_2.0.0.toml").unlink()
    (tmp_path / "rank_2.0.0-rc1.toml").unlink()
    assert load_template("rank").version == "1.10.0"
