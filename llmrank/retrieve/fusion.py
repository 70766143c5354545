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

The ridge projection shrinks towards the average warm item, so a cold item's projected score
sits mid-catalog. ``ColdPlacement`` calibrates the text-only vector: its behavioural part is
scaled, its bias shifted and its text part (the user-text x item-text term) weighted apart
from warm items'. The text-only vector is

    c_i = [a (P t_i)[:-1], (P t_i)[-1] + o],   text part g t_i,

and it is what the count blend mixes with the behavioural vector, so items with few
interactions get a share of it too. (a, o, g) are tuned on pseudo-cold items
(llmrank.retrieve.fusion_fit): warm items held out of the projection and scored as cold.

numpy only: fitting takes milliseconds for catalogs of tens of thousands of items."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from llmrank.config import reject_unknown_fields
from llmrank.errors import ConfigError

DEFAULT_KAPPAS: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0)
DEFAULT_RIDGES: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0)
DEFAULT_TEXT_WEIGHTS: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0)
DEFAULT_COLD_SCALES: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)
# centred (0 = the untuned mean cold score), in units of the behavioural score's spread
DEFAULT_COLD_OFFSETS: tuple[float, ...] = (-1.0, -0.5, 0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0,
                                           3.0)
DEFAULT_COLD_TEXT_SCALES: tuple[float, ...] = (0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 8.0, 16.0)
_GRIDS = ("kappas", "ridges", "text_weights", "cold_scales", "cold_offsets", "cold_text_scales")


@dataclass
class FusionConfig:
    """``kappa=None`` / ``text_weight=None`` are tuned jointly on validation over ``kappas``
    x ``text_weights``; ``ridge=None`` picks the ridge strength by k-fold error over
    ``ridges`` (held-out warm items stand in for cold ones).

    Cold placement (``ColdPlacement``): a random ``pseudo_cold`` fraction of warm items is
    held out of the projection and scored as cold on validation, and (scale, offset,
    text_scale) are chosen over ``cold_scales`` x ``cold_offsets`` x ``cold_text_scales``
    by validation NDCG@10 over all users (kappa and text_weight stay as tuned on the real
    split); among placements within ``cold_tolerance_se`` standard errors of the best, the
    best pseudo-cold Recall@``cold_recall_k`` wins (fusion_fit.fit_cold_placement). A fixed
    ``cold_scale`` / ``cold_offset`` / ``cold_text_scale`` replaces its grid;
    ``cold_recall_floor`` trades warm accuracy for cold recall explicitly; offsets are
    centred grid units (fit_cold_placement). ``pseudo_cold=0`` keeps the untuned placement
    (1, 0, 1)."""

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
    pseudo_cold: float = 0.2
    cold_scale: float | None = None
    cold_scales: tuple[float, ...] = DEFAULT_COLD_SCALES
    cold_offset: float | None = None
    cold_offsets: tuple[float, ...] = DEFAULT_COLD_OFFSETS
    cold_text_scale: float | None = None
    cold_text_scales: tuple[float, ...] = DEFAULT_COLD_TEXT_SCALES
    cold_tolerance_se: float = 1.0
    cold_recall_k: int = 20
    # operating point: the best NDCG@10 among placements whose pseudo-cold Recall@floor_k
    # reaches this (None = the rule above); eval/RESULTS.md section 4 has the trade-off
    cold_recall_floor: float | None = None
    cold_floor_k: int = 100
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key in _GRIDS:
            d[key] = list(d[key])
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FusionConfig:
        """From ``retriever.options.fusion``: a misspelt setting is a ConfigError (dropping
        it silently fitted the defaults the user meant to change)."""
        reject_unknown_fields(cls, data, "retriever.options.fusion setting(s)")
        kw = dict(data)
        try:
            for key in _GRIDS:
                if key in kw:
                    kw[key] = tuple(float(x) for x in kw[key])
            return cls(**kw)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"invalid retriever.options.fusion settings: {exc}") from exc


@dataclass(frozen=True)
class ColdPlacement:
    """How an item's text-only vector is scored (module docstring): ``scale`` multiplies the
    projected behavioural vector (not its bias), ``offset`` (absolute score units) is added
    to the projected bias,
    ``text_scale`` multiplies the item's text part. The identity (1, 0, 1) is the plain
    projection. ``scale`` and ``text_scale`` must be > 0: the retriever divides them out of
    indexed rows to read a cold item's input embedding and text back."""

    scale: float = 1.0
    offset: float = 0.0
    text_scale: float = 1.0

    def __post_init__(self) -> None:
        if not (self.scale > 0 and self.text_scale > 0):
            raise ValueError(f"cold scale and text_scale must be > 0, got {self}")

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ColdPlacement:
        """Missing (an index saved before cold placement existed) = the identity."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: float(v) for k, v in (data or {}).items() if k in known})


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


def text_only_vectors(projected: np.ndarray, cold: ColdPlacement | None = None) -> np.ndarray:
    """[a (P t)[:-1], (P t)[-1] + o]: the behavioural part of an item known by its text."""
    c = cold or ColdPlacement()
    out = np.array(projected, dtype=np.float64)
    out[:, :-1] *= c.scale
    out[:, -1] += c.offset
    return out


def fuse(behavioural: np.ndarray, projected: np.ndarray, counts: np.ndarray,
         kappa: float, cold: ColdPlacement | None = None) -> np.ndarray:
    """Row-wise blend of behavioural and text-only vectors (float32). Rows of items
    without interactions may hold anything in ``behavioural``: their weight is 0."""
    w = blend_weights(counts, kappa)[:, None]
    return (w * behavioural + (1.0 - w) * text_only_vectors(projected, cold)).astype(np.float32)


def text_multipliers(counts: np.ndarray, kappa: float,
                     cold: ColdPlacement | None = None) -> np.ndarray:
    """Per-item weight of the text part, w + (1 - w) g (1 for every item when g = 1)."""
    g = (cold or ColdPlacement()).text_scale
    w = blend_weights(counts, kappa)
    return w + (1.0 - w) * g


def item_rows(behavioural: np.ndarray, projected: np.ndarray, text_vectors: np.ndarray,
              counts: np.ndarray, kappa: float, cold: ColdPlacement | None = None) -> np.ndarray:
    """Index rows [f_i, m_i t_i] (float32): the fused behavioural vector and the weighted
    text embedding. Build and live ``add_items`` both go through here, so an item added
    later gets exactly the row it would have had at build time."""
    m = text_multipliers(counts, kappa, cold)[:, None]  # exactly 1 when g = 1
    text = (m * np.asarray(text_vectors, dtype=np.float32)).astype(np.float32)
    return np.hstack([fuse(behavioural, projected, counts, kappa, cold), text])
