"""Linear contextual bandit: LinUCB (Li et al. 2010) or linear Thompson sampling over
user x item embedding features, with the ranker score as a prior feature.

Features of candidate j for user u:  x = [mu_j, u * v_j, 1]
  * mu_j: the ranker score calibrated to a click probability (the same online calibrator as
    Thompson sampling). Its coefficient has prior mean ``prior_weight`` (1 = "trust the ranker"),
    so before any feedback the bandit ranks like the ranker; ``use_prior_score=False`` drops the
    feature: the same bandit started flat.
  * u * v_j: the elementwise product of the user's (history-mean) embedding and the item's, so
    a weight vector of ones is the cosine; the bandit learns which dimensions matter. With
    ``embedding_dim`` set, wider item vectors are PCA-reduced first (faster, but it learned
    less in the replays).
Ridge regression with prior mean theta0: A = ridge I + sum x x^T, b = ridge theta0 + sum r x,
theta = A^-1 b, kept with Sherman-Morrison updates. UCB adds alpha * sqrt(x^T A^-1 x) and is
deterministic (propensity 1 per shown slot); TS samples theta ~ N(theta, alpha^2 A^-1)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from llmrank.errors import ConfigError
from llmrank.explore.base import Slate
from llmrank.explore.calibration import ScoreCalibrator
from llmrank.explore.features import PCA, ItemFeatures
from llmrank.explore.policies.base import BaseConfig, BasePolicy, Request


@dataclass
class LinearConfig(BaseConfig):
    mode: Literal["ucb", "ts"] = "ucb"
    alpha: float = 0.1
    ridge: float = 1.0
    use_prior_score: bool = True
    prior_weight: float = 1.0
    base_rate: float = 0.02
    calibration: Literal["rank", "platt"] = "rank"
    calibration_strength: float = 50.0
    # > 0: item vectors with more dimensions are PCA-reduced to this many for the bandit's
    # features. 0 (default) keeps them all: on a 384-d text index the full vectors beat PCA-32
    # by +0.012 hit rate in the 20,000-request no-log replay (eval/RESULTS.md section 7(c))
    embedding_dim: int = 0

    def __post_init__(self) -> None:
        if self.mode not in ("ucb", "ts"):
            raise ConfigError(f"mode must be ucb or ts, got {self.mode!r}")
        if self.ridge <= 0 or self.alpha < 0:
            raise ConfigError("ridge must be > 0 and alpha >= 0")
        if self.embedding_dim < 0:
            raise ConfigError(f"embedding_dim must be >= 0, got {self.embedding_dim}")


class LinearBanditPolicy(BasePolicy):
    name: ClassVar[str] = "linucb"
    config_cls: ClassVar[type[BaseConfig]] = LinearConfig
    config: LinearConfig

    def __init__(self, config: BaseConfig | None = None, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        c = self.config
        # the bandit's own view of the items; MMR and the other objectives keep the full vectors
        self.bandit_features: ItemFeatures | None = self.features
        self._pca: PCA | None = None
        if self.features is not None:
            self.bandit_features, self._pca = self.features.reduced(c.embedding_dim)
        self.calibrator = ScoreCalibrator(c.calibration, base_rate=c.base_rate,
                                          strength=c.calibration_strength)
        feats = self.bandit_features
        d = 0 if feats is None or feats.embeddings is None else feats.embeddings.shape[1]
        self.dim = d + 1 + int(c.use_prior_score)
        theta0 = np.zeros(self.dim)
        if c.use_prior_score:
            theta0[0] = c.prior_weight
        self.A_inv = np.eye(self.dim) / c.ridge
        self.b = c.ridge * theta0

    @property
    def deterministic(self) -> bool:  # type: ignore[override]
        # TS with alpha = 0 samples from a zero covariance: its posterior mean, every time
        return self.config.mode == "ucb" or self.config.alpha == 0

    @property
    def theta(self) -> np.ndarray:
        return np.asarray(self.A_inv @ self.b)

    def features_of(self, req: Request) -> np.ndarray:
        """(n, dim) feature rows of the request's candidates."""
        parts = []
        if self.config.use_prior_score:
            parts.append(self.calibrator.predict(req.rank, req.z)[:, None])
        feats, d = self.bandit_features, self.dim - 1 - int(self.config.use_prior_score)
        if d > 0 and feats is not None:
            user = req.context.user_vector
            if user is None:
                user = feats.user_vector(req.context.history)
            elif self._pca is not None and len(user) != d:
                user = self._pca.transform(user)[0]  # a caller's vector in the original space
            emb = feats.embedding_rows(req.codes)
            assert emb is not None
            parts.append(emb * user[None, :] if user is not None else np.zeros_like(emb))
        parts.append(np.ones((len(req.items), 1)))
        return np.hstack(parts)

    def _prepare(self, req: Request) -> Any:
        x = self.features_of(req)
        mean = x @ self.theta
        width = np.sqrt(np.maximum(np.sum((x @ self.A_inv) * x, axis=1), 0.0))  # x_n A^-1 x_n, one GEMM
        return x, mean, width

    def _values(self, req: Request, state: Any, rng: np.random.Generator, m: int) -> np.ndarray:
        x, mean, width = state
        if self.deterministic:
            return np.tile(mean + self.config.alpha * width, (m, 1))
        cov = (self.config.alpha ** 2) * self.A_inv
        thetas = rng.multivariate_normal(self.theta, (cov + cov.T) / 2, size=m, method="cholesky")
        return np.asarray(thetas @ x.T)

    def _learn(self, req: Request, slate: Slate, rewards: np.ndarray) -> None:
        x_all = self.features_of(req)
        index = {item: j for j, item in enumerate(req.items)}
        js = np.array([index[i] for i in slate.items])
        for x, r in zip(x_all[js], rewards.tolist(), strict=True):
            ax = self.A_inv @ x
            self.A_inv -= np.outer(ax, ax) / (1.0 + x @ ax)
            self.b += r * x
        self.calibrator.observe(req.rank[js], req.z[js], rewards)
