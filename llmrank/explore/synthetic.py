"""A synthetic recommendation world with known click probabilities, for testing the
estimators and policies against ground truth.

Users and items have latent vectors; a candidate's true attraction is
sigmoid(scale * u.v + bias), a slot's examination probability is 1 / (1 + p)^eta (position
bias) and a click happens with attraction x examination (the item-position model). The
"ranker" score the policies see is u.v plus Gaussian noise, so the prior is informative but
imperfect, as an LLM's would be."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from llmrank.explore.base import ExploreContext, Policy
from llmrank.explore.features import ItemFeatures
from llmrank.explore.ope import LoggedRound, TargetFn


@dataclass
class SyntheticWorld:
    n_users: int = 200
    n_items: int = 300
    dim: int = 8
    n_candidates: int = 20
    k: int = 5
    score_noise: float = 0.5
    scale: float = 3.0
    bias: float = -2.5
    eta: float = 0.7
    seed: int = 0

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        self.U = rng.normal(size=(self.n_users, self.dim)) / np.sqrt(self.dim)
        self.V = rng.normal(size=(self.n_items, self.dim)) / np.sqrt(self.dim)
        self.item_ids = [f"i{j}" for j in range(self.n_items)]
        self.exam = 1.0 / (1.0 + np.arange(self.k)) ** self.eta

    def features(self, noise: float = 0.0) -> ItemFeatures:
        """Item embeddings for the policies: the true item vectors, plus Gaussian noise of
        this scale relative to their norm (imperfect side information)."""
        emb = self.V / np.linalg.norm(self.V, axis=1, keepdims=True)
        if noise > 0:
            rng = np.random.default_rng(self.seed + 1)
            emb = emb + noise * rng.normal(size=emb.shape) / np.sqrt(self.dim)
            emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        return ItemFeatures(self.item_ids, emb)

    def context(self, rng: np.random.Generator) -> tuple[int, np.ndarray, np.ndarray]:
        """(user, candidate item codes, noisy ranker scores), candidates sorted by score."""
        u = int(rng.integers(self.n_users))
        cands = rng.choice(self.n_items, size=self.n_candidates, replace=False)
        scores = self.U[u] @ self.V[cands].T + self.score_noise * rng.normal(size=len(cands))
        order = np.argsort(-scores)
        return u, cands[order], scores[order]

    def explore_context(self, u: int) -> ExploreContext:
        uv = self.U[u] / np.linalg.norm(self.U[u])
        return ExploreContext(user_id=f"u{u}", user_vector=uv, segment=f"s{u % 4}")

    def ctr(self, u: int, cands: np.ndarray) -> np.ndarray:
        """(k, n) true click probability of candidate j at position p."""
        attraction = 1.0 / (1.0 + np.exp(-(self.scale * (self.U[u] @ self.V[cands].T) + self.bias)))
        return np.asarray(self.exam[:, None] * attraction[None, :])

    def run(self, policy: Policy, n_rounds: int, *, seed: int, learn: bool = True,
            log: bool = True) -> tuple[list[LoggedRound], float, float]:
        """Let ``policy`` act for n rounds. Returns the logged rounds, the mean realised reward
        per round (the replayed value) and the mean expected reward of the slates actually shown
        (the click noise averaged out, the policy's own random choices not: for a stochastic
        policy this is one draw around its exact value; ``true_value`` gives the exact one)."""
        rng = np.random.default_rng(seed)
        rounds: list[LoggedRound] = []
        realised = expected = 0.0
        for _ in range(n_rounds):
            u, cands, scores = self.context(rng)
            ctx = self.explore_context(u)
            ranked = [(self.item_ids[c], float(s)) for c, s in zip(cands, scores, strict=True)]
            slate = policy.select(ranked, self.k, ctx, propensities=log)
            index = {self.item_ids[c]: j for j, c in enumerate(cands)}
            shown = np.array([index[i] for i in slate.items])
            q = self.ctr(u, cands)
            p_click = q[np.arange(len(shown)), shown]
            clicks = (rng.random(len(shown)) < p_click).astype(float)
            realised += clicks.sum()
            expected += p_click.sum()
            if learn:
                policy.update(ctx, slate, clicks.tolist())
            if log:
                assert slate.propensities is not None
                rounds.append(LoggedRound(list(slate.candidates), np.asarray(slate.candidate_scores),
                                          shown, np.asarray(slate.propensities), clicks, ctx, k=slate.k))
        return rounds, realised / n_rounds, expected / n_rounds

    def true_value(self, rounds: list[LoggedRound], target: TargetFn) -> float:
        """Exact expected reward of the target on the logged contexts (ground truth for OPE)."""
        total = 0.0
        for rnd in rounds:
            u = int(rnd.context.user_id[1:]) if rnd.context.user_id else 0
            cands = np.array([int(c[1:]) for c in rnd.candidates])
            pi = target(rnd, rnd.requested)
            total += float((pi * self.ctr(u, cands)[: pi.shape[0]]).sum())
        return total / len(rounds)

