"""Thompson sampling with the ranker (LLM) score as the prior.

``mu_j`` is the ranker's score for this user calibrated to a click probability
(llmrank/explore/calibration.py). ``prior="flat"`` replaces it with ``base_rate`` for every
candidate: the same bandit started flat, which is how the value of the prior is measured.
Feedback is kept per item and per (segment, item); ``pool`` (``segment_pooling``) is how much
the evidence from other segments counts (1 = ignore segments, 0 = each segment learns alone):
    C = C_gi + pool * (C_i - C_gi)   for every count C below.

Two models of how feedback refines the prior (``model``):

* ``"beta"``: a Beta posterior on candidate j's click probability,
      alpha = n0 * mu_j + S,   beta = n0 * (1 - mu_j) + F
  with S/F the item's clicks and non-clicks; ``n0 = prior_strength`` impressions. Simple, but
  the item's evidence is pooled over users, so as it grows it washes out the personalised
  prior (the posterior mean tends to the item's global click rate).
* ``"gamma"`` (default): the prior stays personal and feedback learns a per-item multiplier,
      p_uj = mu_j * lambda_i,   lambda_i ~ Gamma(a0 + clicks_i, a0 + expected_i)
  where expected_i sums mu over the item's impressions (the clicks the prior predicted) and
  ``a0 = prior_strength`` is the prior's weight in expected clicks (a Poisson-Gamma model of
  the calibration residual). Items clicked more than the ranker predicted rise for everyone
  the ranker likes them for; items shown often without clicks sink.

The slate is top-k of one posterior draw per candidate; propensities come from Monte Carlo
(``mc_samples`` draws)."""

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
    model: Literal["gamma", "beta"] = "gamma"
    prior_strength: float = 20.0
    base_rate: float = 0.02
    calibration: Literal["rank", "platt"] = "rank"
    calibration_strength: float = 50.0
    segment_pooling: float = 0.5

    def __post_init__(self) -> None:
        if self.prior not in ("score", "flat"):
            raise ConfigError(f"prior must be score or flat, got {self.prior!r}")
        if self.model not in ("gamma", "beta"):
            raise ConfigError(f"model must be gamma or beta, got {self.model!r}")
        if self.prior_strength <= 0 or not 0 < self.base_rate < 1:
            raise ConfigError("prior_strength must be > 0 and base_rate in (0, 1)")
        if not 0.0 <= self.segment_pooling <= 1.0:
            raise ConfigError("segment_pooling must be in [0, 1]")


# per-item evidence: [clicks, non-clicks, clicks the prior expected]
_Counts = list[float]


class ThompsonPolicy(BasePolicy):
    name: ClassVar[str] = "thompson"
    config_cls: ClassVar[type[BaseConfig]] = ThompsonConfig
    config: ThompsonConfig

    def __init__(self, config: BaseConfig | None = None, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        c = self.config
        self.calibrator = ScoreCalibrator(c.calibration, base_rate=c.base_rate,
                                          strength=c.calibration_strength)
        self.item_counts: dict[str, _Counts] = defaultdict(lambda: [0.0, 0.0, 0.0])
        self.segment_counts: dict[tuple[str, str], _Counts] = defaultdict(lambda: [0.0, 0.0, 0.0])

    def prior_mean(self, req: Request) -> np.ndarray:
        if self.config.prior == "flat":
            return np.full(len(req.items), self.config.base_rate)
        return np.clip(self.calibrator.predict(req.rank, req.z), 1e-6, 1 - 1e-6)

    def evidence(self, req: Request) -> np.ndarray:
        """(n, 3) pooled [clicks, non-clicks, expected clicks] of each candidate."""
        out = np.zeros((len(req.items), 3))
        for j, item in enumerate(req.items):
            if item in self.item_counts:
                out[j] = self.item_counts[item]
        seg = req.context.segment
        if seg is not None:
            own = np.zeros_like(out)
            for j, item in enumerate(req.items):
                if (seg, item) in self.segment_counts:
                    own[j] = self.segment_counts[(seg, item)]
            out = own + self.config.segment_pooling * (out - own)
        return out

    def posterior(self, req: Request) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(a, b, mu): Beta(a, b) of the click probability ("beta"), or Gamma(a, rate b) of
        the multiplier of mu ("gamma")."""
        n0 = self.config.prior_strength
        mu = self.prior_mean(req)
        ev = self.evidence(req)
        if self.config.model == "beta":
            return n0 * mu + ev[:, 0], n0 * (1.0 - mu) + ev[:, 1], mu
        return n0 + ev[:, 0], n0 + ev[:, 2], mu

    def _prepare(self, req: Request) -> Any:
        return self.posterior(req)

    def _values(self, req: Request, state: Any, rng: np.random.Generator, m: int) -> np.ndarray:
        a, b, mu = state
        n = len(a)
        if self.config.model == "beta":
            return rng.beta(a[None, :], b[None, :], size=(m, n))
        return mu[None, :] * rng.gamma(a[None, :], 1.0 / b[None, :], size=(m, n))

    def _learn(self, req: Request, slate: Slate, rewards: np.ndarray) -> None:
        r = np.clip(rewards, 0.0, 1.0)
        index = {item: j for j, item in enumerate(req.items)}
        js = np.array([index[i] for i in slate.items])
        mu = self.prior_mean(req)[js]  # what the prior expected, before this feedback
        seg = req.context.segment
        for item, reward, expected in zip(slate.items, r.tolist(), mu.tolist(), strict=True):
            targets = [self.item_counts[item]]
            if seg is not None:
                targets.append(self.segment_counts[(seg, item)])
            for c in targets:
                c[0] += reward
                c[1] += 1.0 - reward
                c[2] += expected
        self.calibrator.observe(req.rank[js], req.z[js], r)
