from __future__ import annotations

from pathlib import Path

import pytest

from llmrank.errors import ConfigError
from llmrank.finetune.config import load_recipe

RECIPES = sorted((Path(__file__).resolve().parents[2] / "finetune").glob("*.toml"))


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_shipped_recipes_are_valid(path):
    recipe = load_recipe(path)
    assert recipe.name and recipe.train.max_steps > 0
    assert recipe.prompt.template == "rank"


def test_flags_override_and_typos_fail(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text('name = "x"\n[train]\nmax_steps = 10\nlearning_rate = 1e-4\n')
    r = load_recipe(path, {"train.max_steps": 3, "train.learning_rate": None, "mode": "dpo"})
    assert (r.train.max_steps, r.train.learning_rate, r.mode) == (3, 1e-4, "dpo")
    assert r.out_dir() == Path("eval/out/finetune/x")
    assert load_recipe(r.to_dict()) == r  # the manifest's copy rebuilds the same recipe
    for bad in ({"train": {"max_stepz": 1}}, {"trian": {}}, {"mode": "rl"},
                {"prompt": {"candidate_text": "poem"}}):
        with pytest.raises(ConfigError):
            load_recipe(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_recipe(tmp_path / "missing.toml")


def test_validation_metric_is_checked_at_load():
    """A misspelt metric fails when the recipe loads, not with a KeyError at the first
    validation (after the model loaded); every accepted name is one validation reports."""
    import numpy as np

    from llmrank.finetune.config import VALIDATION_METRICS
    from llmrank.finetune.validation import per_user_metrics

    with pytest.raises(ConfigError, match="metric"):
        load_recipe({"validation": {"metric": "ndcg10"}})
    assert load_recipe({"validation": {"metric": "label_nll"}}).validation.metric == "label_nll"
    reported = per_user_metrics(np.zeros((2, 5)), np.array([0, 1]))
    assert set(VALIDATION_METRICS) == set(reported)


def test_the_default_recipe_is_the_shipped_file_wherever_the_command_runs(tmp_path, monkeypatch):
    from llmrank.finetune.config import resolve_recipe

    monkeypatch.chdir(tmp_path)
    path = resolve_recipe(None)
    assert path.is_absolute() and path.name == "sft_ml_small.toml"
    assert load_recipe(path).name == "sft-ml-small"
    assert resolve_recipe(Path("dpo.toml")).is_file()  # a shipped recipe by its name
    (tmp_path / "dpo.toml").write_text('name = "mine"\n')
    assert load_recipe(resolve_recipe(Path("dpo.toml"))).name == "mine"  # a local file wins
    with pytest.raises(ConfigError, match=r"not found: elsewhere/none\.toml"):
        load_recipe(resolve_recipe(Path("elsewhere/none.toml")))


def test_a_missing_shipped_recipe_is_an_error_not_the_builtin_defaults(monkeypatch):
    from llmrank.finetune import config

    monkeypatch.setattr(config, "recipe_dirs", lambda: [])
    with pytest.raises(ConfigError, match=r"sft_ml_small\.toml.*--recipe"):
        config.resolve_recipe(None)


@pytest.mark.parametrize("key,value", [
    ("train.scheduler", "cosin"), ("dpo.loss_type", "sigmod"), ("train.logging_steps", 0),
    ("train.save_steps", 0), ("train.weight_decay", -0.1), ("lora.r", 0), ("lora.alpha", 0),
    ("lora.dropout", 1.5), ("lora.top_layers", -1), ("dpo.beta", 0),
    ("dpo.pairs_per_example", 0), ("validation.n_negatives", 0), ("validation.every", -1),
    ("validation.batch_size", 0), ("examples.per_user", 0), ("examples.n_candidates", 1),
    ("examples.hard_negatives", -1), ("examples.hard_depth", 0), ("examples.max_users", 0),
    ("examples.min_history", -1), ("prompt.max_history", -1), ("prompt.max_prompt_tokens", 0),
])
def test_out_of_range_values_fail_when_the_recipe_loads(key, value):
    """Each was accepted and failed only after the data were prepared (a retriever built, an
    hour on CPU) and the model loaded (a scheduler or LoRA typo: ValueError in transformers or
    peft), at the first DPO step (unknown loss type), or never: validation with 0 negatives
    ranks one candidate, scores every step perfect and keeps the untrained step-0 adapter."""
    with pytest.raises(ConfigError, match=key.split(".")[1]):
        load_recipe(None, {key: value})


def test_every_accepted_scheduler_is_one_transformers_builds_without_extra_settings():
    from transformers import get_scheduler
    from transformers.trainer_utils import SchedulerType

    from llmrank.finetune.config import SCHEDULERS

    assert set(SCHEDULERS) <= {s.value for s in SchedulerType}
    import torch

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    for name in SCHEDULERS:
        get_scheduler(name, opt, num_warmup_steps=1, num_training_steps=10)
        assert load_recipe(None, {"train.scheduler": name}).train.scheduler == name
