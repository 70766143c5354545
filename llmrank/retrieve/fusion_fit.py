"""Fitting the fused retriever's parameters on a leave-one-out split: the text->behaviour
projection (on warm items), then ``kappa`` (behaviour/text blend of item vectors) and
``text_weight`` (weight of the user-text x item-text similarity added to the sequential
score) jointly, by validation NDCG@10 over a small grid.

The fused score of user u and item i is one inner product,

    <[s_u, 1, beta q_u], [f_i, t_i]> = <s_u, f_i[:-1]> + f_i[-1] + beta <q_u, t_i>,

where s_u is the sequential user state, f_i the blended behavioural vector [e_i, b_i], q_u the
recency-weighted mean of the history's text embeddings and t_i the item's text embedding.
beta = 0 is pure behaviour (plus cold-item vectors from text); beta > 0 adds a content
signal that helps whenever item IDs are poorly trained."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from llmrank.data.splits import LeaveOneOut
from llmrank.eval.metrics import metrics_from_ranks, target_ranks
from llmrank.retrieve import query as qv
from llmrank.retrieve.fusion import (
    FusionConfig,
    TextProjection,
    choose_ridge,
    fuse,
    reliability_weights,
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


def fit_fusion(model: SequentialModel, split: LeaveOneOut, text_vectors: np.ndarray,
               config: FusionConfig, half_life: float = 10.0) -> FittedFusion:
    """Projection on warm items; (kappa, text_weight) by validation NDCG@10."""
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

    users = split.eval_users()
    hists = [split.history(int(u), "valid") for u in users]
    targets = np.array([split.target(int(u), "valid") for u in users])
    text_scores = text_queries(hists, text_vectors, half_life) @ text_vectors.T
    emb_table = model.input_embeddings(np.arange(model.n_items))
    grid: dict[str, float] = {}
    best = (-1.0, float(kappas[0]), float(betas[0]))
    for kappa in kappas:
        fused = fuse(behaviour, projected, counts, float(kappa))
        inputs = np.where((counts > 0)[:, None], emb_table, fused[:, :-1])
        seq_scores = model.user_vectors_from_embeddings([inputs[h] for h in hists]) @ fused.T
        for beta in betas:
            scores = seq_scores + float(beta) * text_scores
            for row, h in enumerate(hists):
                scores[row, h] = -np.inf
            ndcg = float(metrics_from_ranks(target_ranks(scores, targets), (10,),
                                            ("ndcg",))["ndcg@10"].mean())
            grid[f"kappa={kappa},text_weight={beta}"] = round(ndcg, 5)
            if ndcg > best[0]:
                best = (ndcg, float(kappa), float(beta))
    _, kappa, beta = best
    vectors = np.hstack([fuse(behaviour, projected, counts, kappa), text_vectors]).astype(np.float32)
    log.info("fusion: ridge %.3g, kappa %.3g, text_weight %.3g (valid NDCG@10 %.4f)",
             ridge, kappa, beta, best[0])
    report = {"ridge": ridge, "kappa": kappa, "text_weight": beta,
              "valid_ndcg10": best[0], "valid_ndcg10_grid": grid,
              "warm_items": len(warm), "cold_items": int(len(counts) - len(warm))}
    return FittedFusion(vectors, projection, kappa, beta, counts, report)
