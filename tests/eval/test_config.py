"""Eval configs: files, overrides, validation, fingerprints."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmrank.errors import ConfigError
from llmrank.eval.config import load_eval_config

CONFIGS = Path(__file__).resolve().parents[2] / "eval" / "configs"


def test_shipped_configs_load():
    paths = sorted(CONFIGS.glob("*.toml"))
    assert paths, "eval/configs has no configs"
    for p in paths:
        cfg = load_eval_config(p)
        assert cfg.rankers and cfg.name == p.stem


def test_overrides_and_errors(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('name = "c"\n[protocol]\nname = "full"\n[[rankers]]\nname = "random"\n')
    cfg = load_eval_config(p, {"protocol.name": "candidates", "run.workers": 3, "seed": None})
    assert cfg.protocol.name == "candidates" and cfg.run.workers == 3 and cfg.seed == 0
    with pytest.raises(ConfigError, match="protcol"):
        load_eval_config({"protcol": {}})
    with pytest.raises(ConfigError, match="retriever"):
        load_eval_config({"protocol": {"name": "retriever"}})
    with pytest.raises(ConfigError, match="unique"):
        load_eval_config({"rankers": [{"name": "random"}, {"name": "random"}]})


def test_fingerprint_ignores_workers_but_not_seed():
    a = load_eval_config({"rankers": [{"name": "random"}]})
    b = load_eval_config({"rankers": [{"name": "random"}], "run": {"workers": 4}})
    c = load_eval_config({"rankers": [{"name": "random"}], "seed": 1})
    spec = a.rankers[0]
    assert a.fingerprint(spec) == b.fingerprint(spec) != c.fingerprint(spec)


def test_a_reference_that_is_not_a_ranker_fails_at_load():
    """run_eval found it out only after evaluating every ranker."""
    raw = {"rankers": [{"name": "random"}], "run": {"reference": "most-popular"}}
    with pytest.raises(ConfigError, match=r"run\.reference 'most-popular' is not among the rankers"):
        load_eval_config(raw)


def test_beyond_k_longer_than_the_kept_lists_is_refused():
    """Coverage/novelty/popularity/diversity@beyond_k are computed on the lists the protocol
    keeps (list_len items per user): beyond_k > list_len reported '@10' numbers of top-5
    lists."""
    with pytest.raises(ConfigError, match="beyond_k"):
        load_eval_config({"protocol": {"list_len": 5, "beyond_k": 10}})
    cfg = load_eval_config({"protocol": {"list_len": 10, "beyond_k": 10}})
    assert cfg.protocol.beyond_k == 10
