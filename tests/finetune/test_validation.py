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
