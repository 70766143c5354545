"""Epsilon-greedy over slates: with probability 1 - epsilon the greedy top-k, otherwise a
uniformly random ordering of the eligible candidates. Exact marginals:
P(j at p) = (1 - epsilon) [j is greedy's p-th] + epsilon / n_eligible."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from llmrank.errors import ConfigError
from llmrank.explore.policies.base import BaseConfig, BasePolicy, Request


@dataclass
class EpsilonGreedyConfig(BaseConfig):
    epsilon: float = 0.1

    def __post_init__(self) -> None:
        if not 0.0 <= self.epsilon <= 1.0:
            raise ConfigError(f"epsilon must be in [0, 1], got {self.epsilon}")


class EpsilonGreedyPolicy(BasePolicy):
    name: ClassVar[str] = "egreedy"
    config_cls: ClassVar[type[BaseConfig]] = EpsilonGreedyConfig
    config: EpsilonGreedyConfig

    def _values(self, req: Request, state: Any, rng: np.random.Generator, m: int) -> np.ndarray:
        n = len(req.scores)
        explore = rng.random(m) < self.config.epsilon
        values = np.tile(req.scores, (m, 1))
        values[explore] = rng.random((int(explore.sum()), n))
        return values

    def _exact(self, req: Request, state: Any, eligible: np.ndarray, k: int) -> np.ndarray | None:
        n, eps = len(req.scores), self.config.epsilon
        greedy = np.argsort(-np.where(eligible, req.scores, -np.inf), kind="stable")[:k]
        out = np.zeros((k, n))
        out[:, eligible] = eps / int(eligible.sum())
        out[np.arange(k), greedy] += 1.0 - eps
        return out
