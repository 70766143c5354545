"""Greedy: show the top-k by ranker score (pure exploitation; propensities are 1)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from llmrank.explore.policies.base import BaseConfig, BasePolicy, Request


class GreedyConfig(BaseConfig):
    pass


class GreedyPolicy(BasePolicy):
    name: ClassVar[str] = "greedy"
    config_cls: ClassVar[type[BaseConfig]] = GreedyConfig
    deterministic: ClassVar[bool] = True

    def _values(self, req: Request, state: Any, rng: np.random.Generator, m: int) -> np.ndarray:
        return np.tile(req.scores, (m, 1))
