"""Softmax (Boltzmann) exploration as a Plackett-Luce slate: positions are filled by sampling
without replacement with P proportional to exp(score / temperature). Scores are standardised
within the list first (``standardize``) so one temperature works for LLM log-probs and
similarity scores alike. Propensities are exact (llmrank/explore/plackett_luce.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from llmrank.errors import ConfigError
from llmrank.explore.plackett_luce import clip_logits, pl_marginals, sample_rankings
from llmrank.explore.policies.base import BaseConfig, BasePolicy, Request


@dataclass
class SoftmaxConfig(BaseConfig):
    temperature: float = 0.5
    standardize: bool = True

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature}")


class SoftmaxPolicy(BasePolicy):
    name: ClassVar[str] = "softmax"
    config_cls: ClassVar[type[BaseConfig]] = SoftmaxConfig
    config: SoftmaxConfig

    def _logits(self, req: Request) -> np.ndarray:
        # clipped over the whole list, so the re-clip over an eligible subset is a no-op and the
        # sampler and the exact marginals see the same distribution
        base = req.z if self.config.standardize else req.scores
        return clip_logits(base / self.config.temperature)

    def _values(self, req: Request, state: Any, rng: np.random.Generator, m: int) -> np.ndarray:
        return sample_rankings(self._logits(req), m, rng)

    def _exact(self, req: Request, state: Any, eligible: np.ndarray, k: int) -> np.ndarray | None:
        idx = np.flatnonzero(eligible)
        out = np.zeros((k, len(req.scores)))
        out[:, idx] = pl_marginals(self._logits(req)[idx], k)
        return out
