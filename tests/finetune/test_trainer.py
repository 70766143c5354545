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
