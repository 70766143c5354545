"""Matrix factorisation baselines through ``implicit`` (CPU): ALS (weighted implicit-feedback
least squares, Hu et al. 2008) and BPR-MF (Rendle et al. 2009). Scores are the dot products
of the learned user and item factors; only the factors are kept after fitting, so scoring in
forked workers never calls into implicit's thread pools.

Determinism: both are seeded; BPR runs single-threaded by default because its Hogwild
updates with several threads depend on thread timing (resumed runs must equal fresh ones)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from llmrank._optional import require
from llmrank.baselines.base import MatrixRanker

log = logging.getLogger(__name__)


class _FactorRanker(MatrixRanker):
    def __init__(self, seed: int = 0, num_threads: int = 1) -> None:
        super().__init__()
        self.seed = seed
        self.num_threads = num_threads
        self.user_factors = np.zeros((0, 0))
        self.item_factors = np.zeros((0, 0))

    def _model(self) -> Any:
        raise NotImplementedError

    def _fit(self, matrix: Any) -> None:
        require("implicit", extra="eval")
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="blas"):  # implicit asks for 1 BLAS thread
            model = self._model()
            model.fit(matrix.astype(np.float32).tocsr(), show_progress=False)
        self.user_factors = np.asarray(model.user_factors, dtype=np.float64)
        self.item_factors = np.asarray(model.item_factors, dtype=np.float64)

    def _full(self, users: np.ndarray) -> np.ndarray:
        return self.user_factors[users] @ self.item_factors.T


class ALSRanker(_FactorRanker):
    name = "als"

    def __init__(self, factors: int = 64, regularization: float = 0.05, alpha: float = 2.0,
                 iterations: int = 15, seed: int = 0, num_threads: int = 1) -> None:
        super().__init__(seed, num_threads)
        self.factors, self.regularization = factors, regularization
        self.alpha, self.iterations = alpha, iterations

    def _model(self) -> Any:
        from implicit.cpu.als import AlternatingLeastSquares

        return AlternatingLeastSquares(
            factors=self.factors, regularization=self.regularization, alpha=self.alpha,
            iterations=self.iterations, random_state=self.seed, num_threads=self.num_threads)


class BPRRanker(_FactorRanker):
    name = "bpr"

    def __init__(self, factors: int = 64, learning_rate: float = 0.05,
                 regularization: float = 0.01, iterations: int = 100, seed: int = 0,
                 num_threads: int = 1) -> None:
        super().__init__(seed, num_threads)
        self.factors, self.learning_rate = factors, learning_rate
        self.regularization, self.iterations = regularization, iterations

    def _model(self) -> Any:
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        return BayesianPersonalizedRanking(
            factors=self.factors, learning_rate=self.learning_rate,
            regularization=self.regularization, iterations=self.iterations,
            random_state=self.seed, num_threads=self.num_threads)
