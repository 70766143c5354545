"""Settings every training run shares (llmrank.finetune.trainer)."""

from __future__ import annotations


def test_report_targets(monkeypatch):
    import importlib.util

    from llmrank.finetune.config import TrainSpec
    from llmrank.finetune.trainer import report_targets

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: object() if name == "wandb" else real(name, *a))
    assert report_targets(TrainSpec()) == ["tensorboard", "wandb"]
    assert report_targets(TrainSpec(report_to=("none",))) == []


def test_warmup_ratio_is_a_share_of_the_steps_also_at_one(tmp_path):
    """train.warmup_ratio is a share of max_steps in [0, 1]; transformers reads a
    warmup_steps of 1.0 as ONE step, so a ratio of 1 warmed up for one step instead of all."""
    from transformers import TrainingArguments

    from llmrank.finetune.config import load_recipe
    from llmrank.finetune.trainer import common_args

    for ratio, steps in ((0.0, 0), (0.05, 2), (0.5, 20), (1.0, 40)):
        recipe = load_recipe(None, {"train.max_steps": 40, "train.warmup_ratio": ratio,
                                    "train.report_to": ["none"]})
        args = TrainingArguments(**common_args(recipe, "cpu", tmp_path, False))
        assert args.get_warmup_steps(40) == steps, ratio


def test_tensorboard_logs_go_to_the_runs_tensorboard_folder(make_recipe, tmp_path):
    """transformers' TensorBoard callback reads TENSORBOARD_LOGGING_DIR when the trainer is
    built, and the variable was set only around train(): the logs went to
    <out>/checkpoints/runs/<date> (deleted by the next fresh run), not <out>/tensorboard."""
    from llmrank.finetune.sft import train_sft

    out = tmp_path / "tb-run"
    train_sft(make_recipe(out, **{"train.max_steps": 1, "train.report_to": ["tensorboard"]}))
    assert list((out / "tensorboard").rglob("events.out.tfevents.*"))
    assert not list((out / "checkpoints").rglob("events.out.tfevents.*"))
