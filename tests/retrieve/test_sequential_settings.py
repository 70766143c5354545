"""Sequential retriever settings from a config: a misspelt key is an error (it used to be
dropped silently, so ``epoch = 3`` trained the default 200 epochs), and settings that cannot
work are refused up front instead of hanging or failing after an epoch of training."""

from __future__ import annotations

import numpy as np
import pytest

from llmrank.config import load_config
from llmrank.errors import ConfigError
from llmrank.retrieve.sequential.config import SequentialConfig
from llmrank.retrieve.sequential.retriever import sequential_config
from llmrank.retrieve.sequential.windows import training_windows


def _options(opts: dict) -> object:
    return load_config({"retriever": {"kind": "sequential", "options": {"sequential": opts}}})


def test_unknown_setting_is_a_config_error_naming_it():
    with pytest.raises(ConfigError, match="epoch"):
        sequential_config(_options({"epoch": 3}))


def test_unknown_setting_in_an_ensemble_member_is_a_config_error():
    with pytest.raises(ConfigError, match="modle"):
        sequential_config(_options({"ensemble": [{"modle": "sasrec"}]}))


def test_known_settings_and_members_still_load():
    sc = sequential_config(_options({"epochs": 3, "ensemble": [{"model": "sasrec", "seed": 1}]}))
    assert sc.epochs == 3 and sc.ensemble == [{"model": "sasrec", "seed": 1}]
    # a saved model folder written by another version still loads (from_dict stays lenient)
    assert SequentialConfig.from_dict({**sc.to_dict(), "future_field": 1}) == sc


@pytest.mark.parametrize("bad", [{"window_step": 0}, {"window_step": -1}, {"eval_every": 0}])
def test_unusable_loop_settings_are_refused(bad):
    with pytest.raises(ValueError):
        SequentialConfig(**bad)
    with pytest.raises(ConfigError):
        sequential_config(_options(bad))


def test_windows_reject_a_non_positive_step():
    """A negative step moved the window end forwards forever (the call never returned)."""
    with pytest.raises(ValueError):
        training_windows([np.arange(30)], max_len=4, step=-1)


@pytest.mark.parametrize("opts", [{"dropout": 5}, {"dropout": -0.1}, {"attn_dropout": 1.0},
                                  {"lr": -1}, {"lr": 0}, {"weight_decay": -0.5}, {"seed": -1}])
def test_settings_torch_would_refuse_are_a_config_error_up_front(opts):
    """``dropout = 5`` or a negative ``lr`` in a config file crashed inside torch, with a
    traceback, after the data were loaded."""
    with pytest.raises(ConfigError, match=next(iter(opts))):
        sequential_config(_options(opts))
