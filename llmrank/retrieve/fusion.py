"""Fusing behavioural and text item vectors, so cold items get sensible vectors.

A sequential model gives warm items vectors v_i = [e_i, b_i] in the space where user states
score items by inner product; text embeddings t_i exist for every item, warm or not. A
ridge-regression projection P (text -> behavioural space, fitted on warm items, weighted by
how reliable each item's vector is, i.e. its interaction count) lets an item with no
interactions borrow the behaviour of items whose text resembles it. Each item's vector is a
count-dependent blend

    f_i = w_i v_i + (1 - w_i) P t_i,      w_i = n_i / (n_i + kappa),

so items never seen in training (n_i = 0) are pure text projections and well-observed items
are essentially their own behavioural vectors; ``kappa`` (the count at which both signals
weigh the same) is tuned on the validation split. This is the linear "map content to the
collaborative space" approach to item cold start (e.g. Gantner et al. 2010, attribute-to-
factor mapping; DropoutNet and Heater refine the same idea with deep mappings).

numpy only: fitting takes milliseconds for catalogs of tens of thousands of items."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_KAPPAS: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0)
DEFAULT_RIDGES: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0)
DEFAULT_TEXT_WEIGHTS: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0)


@dataclass
class FusionConfig:
    """``kappa=None`` / ``text_weight=None`` are tuned jointly on validation over ``kappas``
    x ``text_weights``; ``ridge=None`` picks the ridge strength by k-fold error over
    ``ridges`` (held-out warm items stand in for cold ones)."""

    kappa: float | None = None
    kappas: tuple[float, ...] = DEFAULT_KAPPAS
    text_weight: float | None = None
    text_weights: tuple[float, ...] = DEFAULT_TEXT_WEIGHTS
    ridge: float | None = None
    ridges: tuple[float, ...] = DEFAULT_RIDGES
    # recency half-life (history positions) of the user-text query; None = the retriever
    # section's recency_half_life. 1 beat 10 on validation for the fused retriever
    # (eval/RESULTS.md section 4), as it did for the text retriever (section 1).
    half_life: float | None = 1.0
    folds: int = 5
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("kappas", "ridges", "text_weights"):
            d[key] = list(d[key])
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FusionConfig:
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in data.items() if k in known}
        for key in ("kappas", "ridges", "text_weights"):
            if key in kw:
                kw[key] = tuple(float(x) for x in kw[key])
        return cls(**kw)


@dataclass
class TextProjection:
    """Affine map from text embeddings (dim t) to behavioural vectors (dim d + 1)."""

    weight: np.ndarray  # (t + 1, d + 1), last row = intercept
    ridge: float

    @property
    def text_dim(self) -> int:
        return int(self.weight.shape[0] - 1)

    @property
    def dim(self) -> int:
        return int(self.weight.shape[1])

    def __call__(self, text_vectors: np.ndarray) -> np.ndarray:
        x = np.asarray(text_vectors, dtype=np.float64)
        return (x @ self.weight[:-1] + self.weight[-1]).astype(np.float32)

    @classmethod
    def fit(cls, text_vectors: np.ndarray, targets: np.ndarray,
            sample_weight: np.ndarray | None = None, ridge: float = 1.0) -> TextProjection:
        """Weighted ridge regression (the intercept is not penalised), closed form."""
        x = np.asarray(text_vectors, dtype=np.float64)
        y = np.asarray(targets, dtype=np.float64)
        w = np.ones(len(x)) if sample_weight is None else np.asarray(sample_weight, np.float64)
        if len(x) == 0:
            raise ValueError("cannot fit a text projection on zero items")
        w = w / w.mean()
        mu_x = (w[:, None] * x).sum(0) / w.sum()
        mu_y = (w[:, None] * y).sum(0) / w.sum()
        xc, yc = x - mu_x, y - mu_y
        gram = (xc * w[:, None]).T @ xc + ridge * np.eye(x.shape[1])
        coef = np.linalg.solve(gram, (xc * w[:, None]).T @ yc)
        intercept = mu_y - mu_x @ coef
        return cls(np.vstack([coef, intercept[None, :]]), float(ridge))

    def save(self, path: Path) -> None:
        np.savez(path, weight=self.weight, ridge=np.array(self.ridge))

    @classmethod
    def load(cls, path: Path) -> TextProjection:
        with np.load(path) as data:
            return cls(np.asarray(data["weight"]), float(data["ridge"]))


def reliability_weights(counts: np.ndarray) -> np.ndarray:
    """Regression weight of a warm item: log(1 + n). An item seen a handful of times has a
    noisy vector; a blockbuster's is reliable, but should not drown the long tail."""
    return np.log1p(np.asarray(counts, dtype=np.float64))


def choose_ridge(text_vectors: np.ndarray, targets: np.ndarray, counts: np.ndarray,
                 ridges: tuple[float, ...] = DEFAULT_RIDGES, folds: int = 5,
                 seed: int = 0) -> float:
    """The ridge strength with the lowest weighted squared error on held-out warm items
    (k-fold over items, so the projection is judged on items it did not see)."""
    if len(ridges) == 1:
        return float(ridges[0])
    n = len(text_vectors)
    folds = max(2, min(folds, n))
    assignment = np.random.default_rng(seed).permutation(n) % folds
    w = reliability_weights(counts)
    errors = []
    for ridge in ridges:
        err = 0.0
        for f in range(folds):
            train, test = assignment != f, assignment == f
            proj = TextProjection.fit(text_vectors[train], targets[train], w[train], ridge)
            resid = proj(text_vectors[test]) - targets[test]
            err += float((w[test] * (resid**2).sum(1)).sum())
        errors.append(err)
    return float(ridges[int(np.argmin(errors))])


def blend_weights(counts: np.ndarray, kappa: float) -> np.ndarray:
    """w = n / (n + kappa): 0 for unseen items, -> 1 as interactions accumulate. kappa = 0
    keeps every warm item's own vector and uses text only for items never seen."""
    n = np.asarray(counts, dtype=np.float64)
    if kappa <= 0:
        return (n > 0).astype(np.float64)
    return n / (n + kappa)


def fuse(behavioural: np.ndarray, projected: np.ndarray, counts: np.ndarray,
         kappa: float) -> np.ndarray:
    """Row-wise blend of behavioural and text-projected vectors (float32). Rows of items
    without interactions may hold anything in ``behavioural``: their weight is 0."""
    w = blend_weights(counts, kappa)[:, None]
    return (w * behavioural + (1.0 - w) * projected).astype(np.float32)
