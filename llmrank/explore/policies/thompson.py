"""Thompson sampling with the ranker (LLM) score as the prior.

Each candidate j (item i, user u, segment g) gets a Beta posterior on its click probability:

    alpha = n0 * mu_j + S_gi + pool * (S_i - S_gi)
    beta  = n0 * (1 - mu_j) + F_gi + pool * (F_i - F_gi)

``mu_j`` is the calibrated click probability of the ranker's score for this user
(llmrank/explore/calibration.py; ``prior="flat"`` uses ``base_rate`` for every item instead:
the same bandit started flat); ``n0 = prior_strength`` is how many impressions the prior is
worth; S/F are clicks and non-clicks of item i overall and in segment g, updated from feedback.
``pool`` (``segment_pooling``) is how much evidence from other segments counts (1 = ignore
segments, 0 = segments learn alone). The slate is top-k of one posterior draw per candidate, so
the propensities come from Monte Carlo (``mc_samples`` draws)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from llmrank.errors import ConfigError
from llmrank.explore.base import Slate
from llmrank.explore.calibration import ScoreCalibrator
from llmrank.explore.policies.base import BaseConfig, BasePolicy, Request


@dataclass
class ThompsonConfig(BaseConfig):
    prior: Literal["score", "flat"] = "score"
    prior_strength: float = 100.0
    base_rate: float = 0.02
    calibration: Literal["rank", "platt"] = "rank"
    calibration_strength: float = 50.0
    segment_pooling: float = 0.5

    def __post_init__(self) -> None:
        if self.prior not in ("score", "flat"):
            raise ConfigError(f"prior must be score or flat, got {self.prior!r}")
        if self.prior_strength <= 0 or not 0 < self.base_rate < 1:
            raise ConfigError("prior_strength must be > 0 and base_rate in (0, 1)")
        if not 0.0 <= self.segment_pooling <= 1.0:
            raise ConfigError("segment_pooling must be in [0, 1]")


class ThompsonPolicy(BasePolicy):
    name: ClassVar[str] = "thompson"
    config_cls: ClassVar[type[BaseConfig]] = ThompsonConfig
    config: ThompsonConfig

    def __init__(self, config: BaseConfig | None = None, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        c = self.config
        self.calibrator = ScoreCalibrator(c.calibration, base_rate=c.base_rate,
                                          strength=c.calibration_strength)
        self.item_counts: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
        self.segment_counts: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])

    def prior_mean(self, req: Request) -> np.ndarray:
        if self.config.prior == "flat":
            return np.full(len(req.items), self.config.base_rate)
        return np.clip(self.calibrator.predict(req.rank, req.z), 1e-6, 1 - 1e-6)

    def posterior(self, req: Request) -> tuple[np.ndarray, np.ndarray]:
        """(alpha, beta) for each candidate of the request."""
        n0 = self.config.prior_strength
        mu = self.prior_mean(req)
        alpha, beta = n0 * mu, n0 * (1.0 - mu)
        seg = req.context.segment
        pool = self.config.segment_pooling if seg is not None else 1.0
        s = np.zeros(len(req.items))
        f = np.zeros(len(req.items))
        for j, item in enumerate(req.items):
            if item in self.item_counts:
                s[j], f[j] = self.item_counts[item]
        if seg is not None:
            sg = np.zeros(len(req.items))
            fg = np.zeros(len(req.items))
            for j, item in enumerate(req.items):
                if (seg, item) in self.segment_counts:
                    sg[j], fg[j] = self.segment_counts[(seg, item)]
            s, f = sg + pool * (s - sg), fg + pool * (f - fg)
        return alpha + s, beta + f

    def _prepare(self, req: Request) -> Any:
        return self.posterior(req)

    def _values(self, req: Request, state: Any, rng: np.random.Generator, m: int) -> np.ndarray:
        alpha, beta = state
        return rng.beta(alpha[None, :], beta[None, :], size=(m, len(alpha)))

    def _learn(self, req: Request, slate: Slate, rewards: np.ndarray) -> None:
        r = np.clip(rewards, 0.0, 1.0)
        index = {item: j for j, item in enumerate(req.items)}
        seg = req.context.segment
        for item, reward in zip(slate.items, r.tolist(), strict=True):
            c = self.item_counts[item]
            c[0] += reward
            c[1] += 1.0 - reward
            if seg is not None:
                cs = self.segment_counts[(seg, item)]
                cs[0] += reward
                cs[1] += 1.0 - reward
        js = np.array([index[i] for i in slate.items])
        self.calibrator.observe(req.rank[js], req.z[js], r)
