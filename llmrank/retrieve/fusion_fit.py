"""Fitting the fused retriever's parameters on a leave-one-out split: the text->behaviour
projection (on warm items), then ``kappa`` (behaviour/text blend of item vectors) and
``text_weight`` (weight of the user-text x item-text similarity added to the sequential
score) jointly, by validation NDCG@10 over a small grid, then the cold placement
(llmrank.retrieve.fusion.ColdPlacement) on pseudo-cold items: validation targets are never
cold, so without them nothing would tell how high a text-only item belongs.

The fused score of user u and item i is one inner product,

    <[s_u, 1, beta q_u], [f_i, t_i]> = <s_u, f_i[:-1]> + f_i[-1] + beta <q_u, t_i>,

where s_u is the sequential user state, f_i the blended behavioural vector [e_i, b_i], q_u the
recency-weighted mean of the history's text embeddings and t_i the item's text embedding.
beta = 0 is pure behaviour (plus cold-item vectors from text); beta > 0 adds a content
signal that helps whenever item IDs are poorly trained."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from llmrank.data.splits import LeaveOneOut
from llmrank.eval.metrics import metrics_from_ranks
from llmrank.retrieve import query as qv
from llmrank.retrieve.fusion import (
    ColdPlacement,
    FusionConfig,
    TextProjection,
    blend_weights,
    choose_ridge,
    item_rows,
    reliability_weights,
    text_multipliers,
)
from llmrank.retrieve.sequential.model import SequentialModel

log = logging.getLogger(__name__)


@dataclass
class FittedFusion:
    """Index vectors [f_i, t_i] of every dataset item and the parameters that made them."""

    vectors: np.ndarray
    projection: TextProjection
    kappa: float
    text_weight: float
    counts: np.ndarray
    report: dict[str, Any]
    cold: ColdPlacement = field(default_factory=ColdPlacement)


def train_counts(split: LeaveOneOut) -> np.ndarray:
    """Interactions per item code in the split's training histories."""
    n = split.dataset.n_items
    if not split.train:
        return np.zeros(n, np.int64)
    return np.bincount(np.concatenate(split.train).astype(np.int64), minlength=n)


def text_queries(histories: Sequence[np.ndarray], text_vectors: np.ndarray,
                 half_life: float) -> np.ndarray:
    """Recency-weighted unit mean of each history's item-text vectors (0 for empty ones)."""
    out = np.zeros((len(histories), text_vectors.shape[1]), dtype=np.float32)
    useful = qv.useful_length(half_life)
    for row, h in enumerate(histories):
        if len(h):
            recent = h[-useful:] if useful else h
            out[row] = qv.weighted_query(text_vectors[np.asarray(recent, dtype=np.int64)],
                                         half_life)
    return out


@dataclass
class _Validation:
    """Validation users' histories, targets and the masks that keep history items out (a
    re-consumed target is not masked: it competes, as in the eval harness)."""

    hists: list[np.ndarray]
    targets: np.ndarray
    rows: np.ndarray
    cols: np.ndarray

    @classmethod
    def of(cls, split: LeaveOneOut) -> _Validation:
        users = split.eval_users()
        hists = [np.asarray(split.history(int(u), "valid"), np.int64) for u in users]
        targets = np.array([split.target(int(u), "valid") for u in users], np.int64)
        masked = [h[h != t] for h, t in zip(hists, targets, strict=True)]
        rows = np.repeat(np.arange(len(hists), dtype=np.int64), [len(h) for h in masked])
        cols = np.concatenate([np.zeros(0, np.int64), *masked])
        return cls(hists, targets, rows, cols)

    def ranks(self, scores: np.ndarray) -> np.ndarray:
        """Per-user target rank (history but the target masked, ties pessimistic; scores is
        modified)."""
        scores[self.rows, self.cols] = -np.inf
        target = scores[np.arange(len(self.targets)), self.targets][:, None]
        ranks = (scores >= target).sum(axis=1).astype(np.float64)
        ranks[~np.isfinite(target[:, 0])] = np.inf
        return ranks

    def ndcg(self, scores: np.ndarray) -> np.ndarray:
        """Per-user NDCG@10 (see ``ranks``)."""
        return _ndcg10(self.ranks(scores))


@dataclass
class _Parts:
    """Score components (users x items) under one projection and set of cold items: the
    fused score for any (kappa, beta, cold) is a linear combination of them."""

    behaviour: np.ndarray  # <s_u, v_i> + b_i (trained item vectors)
    projected: np.ndarray  # <s_u, (P t_i)[:-1]>
    projected_bias: np.ndarray  # (P t_i)[-1], per item
    text: np.ndarray  # <q_u, t_i>

    def scores(self, counts: np.ndarray, kappa: float, beta: float,
               cold: ColdPlacement) -> np.ndarray:
        w = blend_weights(counts, kappa).astype(np.float32)
        text_only = (np.float32(cold.scale) * self.projected + self.projected_bias
                     + np.float32(cold.offset))
        m = text_multipliers(counts, kappa, cold).astype(np.float32)
        return w * self.behaviour + (1.0 - w) * text_only + np.float32(beta) * m * self.text


def _parts(model: SequentialModel, val: _Validation, counts: np.ndarray,
           projected: np.ndarray, text_scores: np.ndarray) -> _Parts:
    """User states read cold items (count 0) in histories as their projected vectors."""
    emb_table = model.input_embeddings(np.arange(model.n_items))
    inputs = np.where((counts > 0)[:, None], emb_table, projected[:, :-1])
    states = model.user_vectors_from_embeddings([inputs[h] for h in val.hists])
    return _Parts(states @ model.item_vectors().T, states[:, :-1] @ projected[:, :-1].T,
                  projected[:, -1].astype(np.float32), text_scores)


def fit_fusion(model: SequentialModel, split: LeaveOneOut, text_vectors: np.ndarray,
               config: FusionConfig, half_life: float = 10.0) -> FittedFusion:
    """Projection on warm items; (kappa, text_weight) by validation NDCG@10; then the cold
    placement on pseudo-cold items (``fit_cold_placement``)."""
    counts = train_counts(split)
    behaviour = model.item_vectors()
    warm = np.flatnonzero(counts > 0)
    ridge = config.ridge if config.ridge is not None else choose_ridge(
        text_vectors[warm], behaviour[warm], counts[warm], config.ridges, config.folds,
        config.seed)
    projection = TextProjection.fit(text_vectors[warm], behaviour[warm],
                                    reliability_weights(counts[warm]), ridge)
    projected = projection(text_vectors)
    kappas = (config.kappa,) if config.kappa is not None else config.kappas
    betas = (config.text_weight,) if config.text_weight is not None else config.text_weights

    val = _Validation.of(split)
    if not len(val.targets):  # every NDCG below would be the mean of nothing (NaN)
        log.warning("fusion: no validation user (every history is shorter than 3 items): "
                    "kappa %s, text_weight %s and the cold placement are not tuned",
                    kappas[0], betas[0])
    text_scores = text_queries(val.hists, text_vectors, half_life) @ text_vectors.T
    parts = _parts(model, val, counts, projected, text_scores)
    grid: dict[str, float] = {}
    best = (-1.0, float(kappas[0]), float(betas[0]))
    for kappa in kappas if len(val.targets) else ():
        for beta in betas:
            ndcg = float(val.ndcg(parts.scores(counts, float(kappa), float(beta),
                                               ColdPlacement())).mean())
            grid[f"kappa={kappa},text_weight={beta}"] = round(ndcg, 5)
            if ndcg > best[0]:
                best = (ndcg, float(kappa), float(beta))
    _, kappa, beta = best
    log.info("fusion: ridge %.3g, kappa %.3g, text_weight %.3g (valid NDCG@10 %.4f)",
             ridge, kappa, beta, best[0])
    report = {"ridge": ridge, "kappa": kappa, "text_weight": beta,
              "valid_ndcg10": best[0] if grid else None, "valid_ndcg10_grid": grid,
              "warm_items": len(warm), "cold_items": int(len(counts) - len(warm))}
    del parts  # users x items matrices: the cold stage builds its own
    cold, cold_report = fit_cold_placement(model, val, counts, behaviour, text_vectors,
                                           text_scores, ridge, kappa, beta, config)
    report["cold"] = cold_report
    vectors = item_rows(behaviour, projected, text_vectors, counts, kappa, cold)
    return FittedFusion(vectors, projection, kappa, beta, counts, report, cold)


def refit_fusion(model: SequentialModel, split: LeaveOneOut, text_vectors: np.ndarray,
                 config: FusionConfig, tuned: FittedFusion, half_life: float = 10.0) -> FittedFusion:
    """Fusion for a model refitted on the validation items: the parameters tuned on the
    early-stopped model (``tuned``: ridge, kappa, text_weight, cold placement in grid units)
    are kept, and only what belongs to the model is recomputed (its text projection, the
    cold offset's centring). Tuning again would score the refitted model on items it
    trained on. The report is ``tuned``'s, marked ``refit``."""
    cold = tuned.report.get("cold", {})
    fixed = replace(config, kappa=tuned.kappa, text_weight=tuned.text_weight,
                    ridge=tuned.report["ridge"], cold_recall_floor=None,
                    pseudo_cold=config.pseudo_cold if cold.get("tuned") else 0.0,
                    cold_scale=cold.get("scale"), cold_offset=cold.get("offset_spread_units"),
                    cold_text_scale=cold.get("text_scale"))
    out = fit_fusion(model, split, text_vectors, fixed, half_life)
    out.report = {**tuned.report, "refit": True}
    return out


def fit_cold_placement(model: SequentialModel, val: _Validation, counts: np.ndarray,
                       behaviour: np.ndarray, text_vectors: np.ndarray,
                       text_scores: np.ndarray, ridge: float, kappa: float, beta: float,
                       config: FusionConfig) -> tuple[ColdPlacement, dict[str, Any]]:
    """Hold a seeded random ``pseudo_cold`` fraction of warm items out of the projection,
    score them exactly as cold items are scored (text-only vector, projected input in
    histories) and everything else as usual, and choose (scale, offset, text_scale) by
    validation NDCG@10 over all users, so the cost to warm targets is measured too.

    The offset grid is centred: offset 0 keeps the average cold item's score where the
    untuned projection puts it whatever the scale and text scale, and one unit is the
    spread of the behavioural score. All-user NDCG@10 is nearly flat over the grid (a cold
    target rarely reaches the top 10 either way), so among the placements within
    ``cold_tolerance_se`` standard errors of the best (paired over users) the one with the
    best pseudo-cold Recall@``cold_recall_k`` wins; 0 = plain argmax. ``cold_recall_floor``
    overrides that: the best NDCG@10 among placements whose pseudo-cold
    Recall@``cold_floor_k`` reaches the floor (an explicit cold/warm operating point)."""
    warm = np.flatnonzero(counts > 0)
    n_pseudo = round(config.pseudo_cold * len(warm))
    # no validation user: the offset's centre and spread would be means over nobody (NaN),
    # and a NaN offset turns every index row NaN (0 * NaN in the blend)
    if n_pseudo < 1 or len(warm) - n_pseudo < 2 or not len(val.targets):
        return ColdPlacement(), {"tuned": False, "pseudo_cold_items": 0}
    rng = np.random.default_rng(config.seed)
    pseudo = np.sort(rng.choice(warm, size=n_pseudo, replace=False))
    held = counts.copy()
    held[pseudo] = 0
    kept = np.flatnonzero(held > 0)
    projection = TextProjection.fit(text_vectors[kept], behaviour[kept],
                                    reliability_weights(held[kept]), ridge)
    parts = _parts(model, val, held, projection(text_vectors), text_scores)
    w = blend_weights(held, kappa)
    base = w * parts.behaviour + (1.0 - w) * (parts.projected + parts.projected_bias)
    spread = float(base[:, held > 0].std(axis=1).mean())
    cold_cols = held == 0
    p_mean = float(parts.projected[:, cold_cols].mean())
    t_mean = float(parts.text[:, cold_cols].mean())
    is_pseudo = np.isin(val.targets, pseudo)
    k = config.cold_recall_k

    def placement(a: float, o: float, g: float) -> ColdPlacement:
        """Absolute offset of grid point (a, o, g): centred as the docstring says."""
        return ColdPlacement(a, o * spread - (a - 1.0) * p_mean - beta * (g - 1.0) * t_mean, g)

    per_user: dict[tuple[float, float, float], np.ndarray] = {}
    text_scales = _fixed_or(config.cold_text_scale,  # no text term: the scale is moot
                            config.cold_text_scales if beta else (1.0,))
    points = [(a, o, g) for a in _fixed_or(config.cold_scale, config.cold_scales)
              for o in _fixed_or(config.cold_offset, config.cold_offsets) for g in text_scales]
    for point in [(1.0, 0.0, 1.0), *points]:
        ranks = val.ranks(parts.scores(held, kappa, beta, placement(*point)))
        per_user[point] = ranks
    ndcg = {pt: _ndcg10(r) for pt, r in per_user.items()}
    best = max(points, key=lambda pt: float(ndcg[pt].mean()))
    chosen = best
    if config.cold_tolerance_se > 0 and is_pseudo.any():
        def eligible(pt: tuple[float, float, float]) -> bool:
            diff = ndcg[pt] - ndcg[best]
            se = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else 0.0
            return float(diff.mean()) >= -config.cold_tolerance_se * se

        chosen = max((pt for pt in points if eligible(pt)), key=lambda pt: (
            float((per_user[pt][is_pseudo] <= k).mean()), float(ndcg[pt].mean())))
    floor_k = config.cold_floor_k
    if config.cold_recall_floor is not None:
        reach = [pt for pt in points
                 if _recall(per_user[pt][is_pseudo], floor_k) >= config.cold_recall_floor]
        if reach:
            chosen = max(reach, key=lambda pt: float(ndcg[pt].mean()))
        else:
            log.warning("no cold placement reaches pseudo-cold Recall@%d %.3g: keeping %s",
                        floor_k, config.cold_recall_floor, chosen)

    def summary(pt: tuple[float, float, float]) -> dict[str, float]:
        r, nd = per_user[pt], ndcg[pt]
        return {"ndcg@10": float(nd.mean()),
                "pseudo_cold_ndcg@10": float(nd[is_pseudo].mean()) if is_pseudo.any() else 0.0,
                f"pseudo_cold_recall@{k}": float((r[is_pseudo] <= k).mean())
                if is_pseudo.any() else 0.0,
                "pseudo_cold_recall@100": _recall(r[is_pseudo], 100),
                f"pseudo_cold_recall@{floor_k}": _recall(r[is_pseudo], floor_k),
                "other_ndcg@10": float(nd[~is_pseudo].mean()),
                f"all_recall@{k}": float((r <= k).mean())}

    cold = placement(*chosen)
    a, o, g = chosen
    log.info("cold placement on %d pseudo-cold items: scale %.3g, offset %.3g spread (%.3g), "
             "text_scale %.3g; valid %s; untuned %s", n_pseudo, a, o, cold.offset, g,
             summary(chosen), summary((1.0, 0.0, 1.0)))
    report = {"tuned": True, "pseudo_cold_items": n_pseudo,
              "pseudo_cold_targets": int(is_pseudo.sum()), "spread": spread,
              "centre": {"projected": p_mean, "text": t_mean},
              "offset_spread_units": o, **cold.to_dict(),
              "valid": summary(chosen), "valid_untuned": summary((1.0, 0.0, 1.0)),
              "valid_best_ndcg10_point": list(best), "valid_best_ndcg10": summary(best),
              "tolerance_se": config.cold_tolerance_se, "recall_k": k,
              "recall_floor": config.cold_recall_floor, "floor_k": floor_k,
              "grid_columns": ["ndcg@10", f"pseudo_cold_recall@{k}", "pseudo_cold_recall@100",
                               f"all_recall@{k}", "all_recall@100"],
              "grid": {f"scale={pt[0]},offset={pt[1]},text_scale={pt[2]}": [
                  round(float(v), 5) for v in (
                      ndcg[pt].mean(), _recall(per_user[pt][is_pseudo], k),
                      _recall(per_user[pt][is_pseudo], 100), _recall(per_user[pt], k),
                      _recall(per_user[pt], 100))] for pt in points}}
    return cold, report


def _recall(ranks: np.ndarray, k: int) -> float:
    return float((ranks <= k).mean()) if len(ranks) else 0.0


def _ndcg10(ranks: np.ndarray) -> np.ndarray:
    return metrics_from_ranks(ranks, (10,), ("ndcg",))["ndcg@10"]


def _fixed_or(value: float | None, grid: tuple[float, ...]) -> tuple[float, ...]:
    return (float(value),) if value is not None else tuple(float(x) for x in grid)
