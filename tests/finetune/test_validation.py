from __future__ import annotations

import json

import numpy as np

from llmrank.finetune.config import ValidationSpec
from llmrank.finetune.validation import RankingValidation, ValidationSample


def _old_run(out):
    (out / "best").mkdir(parents=True)
    (out / "best" / "best.json").write_text(json.dumps({"step": 7, "value": 0.9}))
    (out / "validation.jsonl").write_text('{"step": 7, "ndcg@10": 0.9}\n')


def _validation(out, **kw):
    sample = ValidationSample(np.zeros(0, np.int64), [], [], np.zeros(0, np.int64))
    return RankingValidation(sample, lambda llm: None, "unused", ValidationSpec(), out, **kw)


def test_resumed_validation_keeps_the_best_so_far(tmp_path):
    _old_run(tmp_path)
    v = _validation(tmp_path)
    assert v.best == {"step": 7, "value": 0.9}
    assert (tmp_path / "validation.jsonl").is_file()


def test_fresh_run_does_not_inherit_an_old_runs_best_or_log(tmp_path):
    _old_run(tmp_path)
    v = _validation(tmp_path, fresh=True)
    assert v.best is None
    assert not (tmp_path / "best").exists() and not (tmp_path / "validation.jsonl").exists()


def test_a_loss_metric_keeps_the_lowest(tmp_path, monkeypatch):
    """validation.metric = 'label_nll' keeps the step with the lowest NLL (a ranking metric
    the highest); before, the highest NLL (the worst adapter) was kept."""
    sample = ValidationSample(np.zeros(1, np.int64), [[]], [[]], np.zeros(1, np.int64))
    # the target (column 0) ranks 3rd, 5th, 1st, 4th: best at step 2 by NLL and by NDCG
    rows = [np.array([[t, -1.0, -2.0, -3.0, -4.0]]) for t in (-2.5, -5.0, -0.5, -3.5)]
    for metric in ("label_nll", "ndcg@10"):
        v = RankingValidation(sample, lambda llm: None, "unused", ValidationSpec(metric=metric),
                              tmp_path / metric, fresh=True)
        scores = iter(rows)
        monkeypatch.setattr(v, "evaluate", lambda model, s=scores: next(s))
        monkeypatch.setattr(v, "_save_best", lambda model: None)
        for step in range(4):
            v.step(None, step)
        assert v.best is not None and v.best["step"] == 2, metric


def test_validation_renders_prompts_under_the_recipes_bound(tmp_path, monkeypatch):
    """The live model of a validation pass had the default bound of 2048 tokens: a recipe
    whose prompt.max_prompt_tokens is above it trained on longer prompts (more history) than
    it was validated on. The bound now comes from the recipe."""
    import llmrank.finetune.live as live
    import llmrank.finetune.validation as validation

    seen: dict[str, int] = {}

    class Recorder:
        def __init__(self, model, tokenizer_path, *, batch_size=4, max_prompt_tokens=2048):
            seen["max_prompt_tokens"] = max_prompt_tokens

    monkeypatch.setattr(live, "LiveTransformersLLM", Recorder)
    monkeypatch.setattr(validation, "score_sample", lambda llm, builder, sample, seed: np.zeros((1, 2)))

    class Model:
        training = False

        def eval(self):
            pass

    _validation(tmp_path, max_prompt_tokens=3000).evaluate(Model())
    assert seen == {"max_prompt_tokens": 3000}
