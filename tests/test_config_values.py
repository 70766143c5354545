"""``llmrank.config``: where llmrank keeps its files, and values as the CLI's ``--set`` and YAML
give them."""

from __future__ import annotations

import re
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


def test_set_values_that_look_like_numbers_fill_text_fields(tmp_path: Path) -> None:
    """``--set data.dataset=2024`` (a folder), ``--set reranker.adapter=20240101`` (an adapter
    named by date): ``--set`` reads 2024 as JSON, and a text field refused the number."""
    from llmrank.cli.common import parse_key_values
    from llmrank.config import load_config

    cfg = load_config(None, parse_key_values(
        ["data.dataset=2024", "reranker.adapter=20240101", "chat.model=1.5", "reranker.permutations=3"]))
    assert (cfg.data.dataset, cfg.reranker.adapter, cfg.chat.model) == ("2024", "20240101", "1.5")
    assert cfg.reranker.permutations == 3  # numbers stay numbers where numbers belong
    (tmp_path / "c.yaml").write_text("data:\n  dataset: 2024\n", encoding="utf-8")  # YAML reads it as int
    assert load_config(tmp_path / "c.yaml").data.dataset == "2024"


def test_recipes_and_eval_configs_take_numbers_into_text_fields_too() -> None:
    """``llmrank finetune --set name=2024`` and ``llmrank eval --set data.dataset=2024``: the
    same JSON reading of --set as the main config, the same answer."""
    from llmrank.cli.common import parse_key_values
    from llmrank.eval.config import load_eval_config
    from llmrank.finetune.config import load_recipe

    recipe = load_recipe(None, parse_key_values(["name=2024", "data.dataset=100", "train.max_steps=7"]))
    assert (recipe.name, recipe.data.dataset, recipe.train.max_steps) == ("2024", "100", 7)
    ev = load_eval_config(None, parse_key_values(["data.dataset=2024", "name=7"]))
    assert (ev.data.dataset, ev.name) == ("2024", "7")


@pytest.mark.parametrize("override", [
    {"protocol.max_users": 0}, {"seed": -1}, {"data.kcore": -1}, {"run.workers": 0},
    {"rankers": []}, {"protocol.n_negatives": 0}, {"protocol.n_retrieve": 0},
    {"run.shard_size": 0}, {"protocol.beyond_k": 0}, {"protocol.list_len": 0},
])
def test_eval_config_bounds_are_config_errors(override) -> None:
    """A value the run cannot use is refused when the config loads, not as a traceback from
    numpy or an empty evaluation that exits 0."""
    from llmrank.errors import ConfigError
    from llmrank.eval.config import load_eval_config

    (key,) = override  # its own bound, not "Extra inputs are not permitted" for a renamed key
    with pytest.raises(ConfigError, match=rf"{re.escape(key)}: (Input|List) should"):
        load_eval_config(None, override)


@pytest.mark.parametrize("override", [
    {"train.max_steps": 0}, {"train.learning_rate": 0.0}, {"train.threads": 0},
    {"train.batch_size": 0}, {"train.grad_accum": 0}, {"train.warmup_ratio": 1.5},
])
def test_recipe_bounds_are_config_errors(override) -> None:
    """``train.max_steps = 0`` reached the trainer, where it means three full epochs."""
    from llmrank.errors import ConfigError
    from llmrank.finetune.config import load_recipe

    (key,) = override  # its own bound, not "Unexpected keyword argument" for a renamed key
    with pytest.raises(ConfigError, match=rf"{re.escape(key)}: Input should"):
        load_recipe(None, override)


def test_config_paths_expand_the_tilde(tmp_path: Path, monkeypatch) -> None:
    """``[feedback] path = "~/fb.sqlite"`` made a folder literally named '~' in the working
    directory and logged there, and ``[index] path = "~/idx"`` was "no retriever index at
    ~/idx"; data_dir, models and adapters already expanded it."""
    from llmrank.config import load_config
    from llmrank.feedback import open_store

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    (tmp_path / "c.toml").write_text('[feedback]\npath = "~/fb.sqlite"\n[index]\npath = "~/idx"\n'
                                     '[data]\ndata_dir = "~/data"\n', encoding="utf-8")
    cfg = load_config(tmp_path / "c.toml")
    assert cfg.index.path == str(tmp_path / "home" / "idx")
    assert cfg.data.data_dir == str(tmp_path / "home" / "data")
    open_store(cfg.feedback)
    assert (tmp_path / "home" / "fb.sqlite").is_file()
    assert not (tmp_path / "cwd" / "~").exists()
    assert load_config(None, {"feedback.path": "~"}).feedback.path == str(tmp_path / "home")


def test_set_keeps_the_text_of_a_number_given_to_a_text_field() -> None:
    """``--set reranker.adapter=1.10`` loaded the adapter '1.1', ``--set data.dataset=1e3`` the
    dataset '1000.0': the JSON number's text was rebuilt from the float. Number fields still
    get the number, and the value survives a copy and a pickle (Ray, worker processes)."""
    import copy
    import pickle

    from llmrank.cli.common import parse_key_values
    from llmrank.config import load_config

    sets = parse_key_values(["reranker.adapter=1.10", "data.dataset=1e3", "chat.model=NaN",
                             "retriever.recency_half_life=2.50", "reranker.blend_retrieval=5e-1",
                             "reranker.options.top_p=0.90"])
    cfg = load_config(None, sets)
    assert (cfg.reranker.adapter, cfg.data.dataset, cfg.chat.model) == ("1.10", "1e3", "NaN")
    assert cfg.retriever.recency_half_life == 2.5 and type(cfg.retriever.recency_half_life) is float
    assert cfg.reranker.blend_retrieval == 0.5
    top_p = cfg.reranker.options["top_p"]
    assert top_p == 0.9 and isinstance(top_p, float)
    assert pickle.loads(pickle.dumps(top_p)) == 0.9 and copy.deepcopy(top_p) == 0.9
    assert load_config(pickle.loads(pickle.dumps(cfg))) == cfg
