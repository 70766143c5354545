from __future__ import annotations

from pathlib import Path

import pytest

from llmrank.config_files import read_config_file, with_overrides
from llmrank.errors import ConfigError


def test_reads_toml_and_yaml(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text('[reranker]\npermutations = 3\n', encoding="utf-8")
    (tmp_path / "a.yaml").write_text("reranker:\n  permutations: 3\n", encoding="utf-8")
    assert read_config_file(tmp_path / "a.toml") == {"reranker": {"permutations": 3}}
    assert read_config_file(tmp_path / "a.yaml") == {"reranker": {"permutations": 3}}


@pytest.mark.parametrize(("name", "text", "match"), [
    ("missing.toml", None, "recipe not found"),
    ("bad.toml", "[reranker\n", "bad.toml"),
    ("list.yaml", "- 1\n- 2\n", "top level must be a mapping"),
    ("conf.json", "{}", "must be .toml, .yaml or .yml"),
])
def test_bad_files_name_the_file(tmp_path: Path, name: str, text: str | None, match: str) -> None:
    if text is not None:
        (tmp_path / name).write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=match):
        read_config_file(tmp_path / name, "recipe")


def test_overrides_set_nested_keys_without_touching_the_input() -> None:
    raw = {"reranker": {"permutations": 1, "model": "m"}}
    out = with_overrides(raw, {"reranker.permutations": 3, "retriever.k": 50, "x": None})
    assert out == {"reranker": {"permutations": 3, "model": "m"}, "retriever": {"k": 50}}
    assert raw == {"reranker": {"permutations": 1, "model": "m"}}


def test_override_through_a_value_is_an_error() -> None:
    with pytest.raises(ConfigError, match="not a section"):
        with_overrides({"reranker": 3}, {"reranker.permutations": 2})


@pytest.mark.parametrize(("name", "content", "match"), [
    ("bad.yaml", b"reranker:\n  permutations: [1\n", "malformed YAML"),
    ("tab.yml", b"reranker:\n\tpermutations: 1\n", "malformed YAML"),
    ("latin1.toml", b'[data]\ndataset = "caf\xe9"\n', "not UTF-8"),
    ("latin1.yaml", b"data:\n  dataset: caf\xe9\n", "not UTF-8"),
])
def test_malformed_or_non_utf8_files_are_config_errors(tmp_path: Path, name: str, content: bytes,
                                                       match: str) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ConfigError, match=match) as info:
        read_config_file(tmp_path / name)
    assert name in str(info.value)


def test_empty_yaml_is_an_empty_mapping(tmp_path: Path) -> None:
    (tmp_path / "empty.yaml").write_text("# nothing yet\n", encoding="utf-8")
    assert read_config_file(tmp_path / "empty.yaml") == {}


def test_null_override_sets_none_where_a_plain_none_is_skipped() -> None:
    from llmrank.config_files import NULL

    raw = {"reranker": {"adapter": "lora", "model": "m"}}
    out = with_overrides(raw, {"reranker.adapter": NULL, "reranker.model": None})
    assert out == {"reranker": {"adapter": None, "model": "m"}}


def test_invalid_values_are_one_line_per_problem_without_pydantic_links():
    """--set reranker.permutations=0 printed pydantic's multi-line dump with its URLs."""
    from llmrank.config import load_config
    from llmrank.eval.config import load_eval_config
    from llmrank.finetune.config import load_recipe

    with pytest.raises(ConfigError) as info:
        load_config(None, {"reranker.permutations": 0, "reranker.bogus": 1})
    msg = str(info.value)
    assert msg == ("invalid config: reranker.permutations: Input should be greater than or equal "
                   "to 1 (got 0); reranker.bogus: unknown key (valid: adapter, backend, batch_size, "
                   "blend_retrieval, device, dtype, enabled, max_history, max_labels, max_prompt_tokens, "
                   "model, options, permutations, strategy, template)")
    with pytest.raises(ConfigError) as info:
        load_eval_config(None, {"run.workers": "many"})
    assert str(info.value).startswith("invalid eval config: run.workers: ")
    assert str(info.value).endswith("(got 'many')") and "\n" not in str(info.value)
    with pytest.raises(ConfigError) as info:
        load_recipe(None, {"train.max_steps": "x", "train.bogus": 1})
    text = str(info.value)
    assert "\n" not in text and "pydantic.dev" not in text and "train.max_steps: " in text
    assert "(got 'x'); train.bogus: Unexpected keyword argument" in text


def test_problems_caps_the_list_and_drops_pydantics_prefix():
    from llmrank.config_files import problems

    errors = [{"loc": ("a", i), "msg": "bad", "input": "v" * 100} for i in range(7)]
    text = problems(errors)
    assert text.count("; ") == 5 and text.endswith("2 more") and "a.0: bad (got 'vvv" in text
    assert problems([{"loc": (), "msg": "Value error, k must be >= 1", "input": {}}]) == "k must be >= 1"


def test_a_key_given_twice_in_yaml_is_an_error_naming_it(tmp_path: Path) -> None:
    """YAML keeps the last of two equal keys: a second ``reranker:`` section silently dropped
    the first one's settings. TOML already refuses it."""
    (tmp_path / "twice.yaml").write_text(
        "reranker:\n  permutations: 3\ndata:\n  dataset: ml-100k\nreranker:\n  model: m\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"twice\.yaml.*'reranker' given twice.*line 5"):
        read_config_file(tmp_path / "twice.yaml")
    (tmp_path / "nested.yml").write_text("data:\n  kcore: 5\n  kcore: 10\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="'kcore' given twice"):
        read_config_file(tmp_path / "nested.yml")
    (tmp_path / "anchors.yaml").write_text(  # a merge key is not a repeated key
        "base: &b {kcore: 5}\ndata:\n  <<: *b\n  dataset: x\n", encoding="utf-8")
    assert read_config_file(tmp_path / "anchors.yaml")["data"] == {"kcore": 5, "dataset": "x"}


def test_an_empty_yaml_section_means_its_defaults(tmp_path: Path) -> None:
    """``reranker:`` with every line under it commented out is None in YAML: it was refused as
    'Input should be a valid dictionary', and a ``--set reranker.x=...`` as 'not a section'."""
    from llmrank.config import load_config

    (tmp_path / "c.yaml").write_text("reranker:\n  # model: my-model\ndata:\n  kcore: 5\n", encoding="utf-8")
    cfg = load_config(tmp_path / "c.yaml")
    assert cfg.reranker.model == "default" and cfg.data.kcore == 5
    assert load_config(tmp_path / "c.yaml", {"reranker.permutations": 3}).reranker.permutations == 3


def test_an_unknown_key_or_section_lists_the_valid_ones(tmp_path: Path) -> None:
    """``--set reranker.permutaions=3`` and a ``[retreiver]`` section said only "Extra inputs
    are not permitted": the user had to read llmrank/config.py to find the spelling."""
    from llmrank.config import load_config

    with pytest.raises(ConfigError) as info:
        load_config(None, {"reranker.permutaions": 3})
    assert "reranker.permutaions: unknown key (valid: adapter, backend, " in str(info.value)
    assert "permutations" in str(info.value) and "\n" not in str(info.value)
    (tmp_path / "c.toml").write_text("[retreiver]\nkind = 'text'\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"retreiver: unknown key \(valid: chat, data, embedder, "
                                          r"explain, feedback, index, .*retriever, seed\)"):
        load_config(tmp_path / "c.toml")
