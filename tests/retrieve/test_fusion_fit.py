"""Tuning the cold-item placement on pseudo-cold items (llmrank.retrieve.fusion_fit).

A linear stand-in for the sequential model keeps the test exact and fast: a user's state is
the mean of the history's item embeddings, an item's score is <state, e_i> + b_i. Items come
in genres; users stay in one genre and pick its items at random, and an item's text names
its genre, so the text predicts the behaviour. A strong ridge shrinks every projected (cold)
vector towards the average item, which puts cold items below their genre's warm items:
exactly the failure seen on MovieLens (eval/RESULTS.md section 4)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from llmrank.data.dataset import Dataset
from llmrank.data.splits import LeaveOneOut
from llmrank.records import Item, User
from llmrank.retrieve.fusion import ColdPlacement, FusionConfig
from llmrank.retrieve.fusion_fit import fit_fusion

GENRES, STYLES, PER_STYLE, COLD_PER_STYLE = 3, 2, 8, 2  # 48 items, 12 cold


class LinearModel:
    """user state = mean of input embeddings; item vectors [e_i, 0]."""

    def __init__(self, embeddings: np.ndarray) -> None:
        self.emb = embeddings.astype(np.float32)
        self.n_items = len(embeddings)

    def input_embeddings(self, codes: np.ndarray) -> np.ndarray:
        return self.emb[np.asarray(codes, dtype=np.int64)]

    def item_vectors(self) -> np.ndarray:
        return np.hstack([self.emb, np.zeros((self.n_items, 1), np.float32)])

    def user_vectors_from_embeddings(self, sequences: Sequence[np.ndarray]) -> np.ndarray:
        out = np.zeros((len(sequences), self.emb.shape[1] + 1), np.float32)
        out[:, -1] = 1.0
        for r, s in enumerate(sequences):
            if len(s):
                out[r, :-1] = np.asarray(s).mean(axis=0)
        return out


@pytest.fixture(scope="module")
def world():
    """Items belong to a style inside a genre; a user picks items of one style. The item
    text names genre and style; so does the behavioural vector (genre + style one-hots),
    so a same-style item scores 2, a same-genre one 1. Shrunk towards the average item, a
    cold item of the user's style falls below the warm items of the wrong style."""
    rng = np.random.default_rng(0)
    n_styles = GENRES * STYLES
    n = n_styles * PER_STYLE
    items = [Item(f"i{c:02d}", title=f"item {c}") for c in range(n)]
    cold = {s * PER_STYLE + p for s in range(n_styles) for p in range(COLD_PER_STYLE)}
    events = []
    for u in range(300):
        s = int(rng.integers(n_styles))
        pool = [s * PER_STYLE + p for p in range(PER_STYLE) if s * PER_STYLE + p not in cold]
        for t, c in enumerate(rng.choice(pool, size=5, replace=False)):
            events.append((f"u{u:03d}", f"i{int(c):02d}", 1000 + t, None))
    ds = Dataset.from_records("styles", items, [User(f"u{u:03d}") for u in range(300)], events)
    order = np.array([int(i[1:]) for i in ds.item_ids])  # dataset code -> item number
    style = order // PER_STYLE
    onehots = np.hstack([np.eye(GENRES)[style // STYLES], np.eye(n_styles)[style]])
    emb = onehots + rng.normal(scale=0.05, size=onehots.shape)
    text = np.hstack([onehots, rng.normal(scale=0.3, size=(n, 8))])
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    cold_codes = np.array([c for c in range(n) if order[c] in cold])
    return ds, LeaveOneOut.from_dataset(ds), LinearModel(emb), text.astype(np.float32), \
        style, cold_codes


def cold_ranks(fitted, model, text, style, cold_codes) -> float:
    """Mean rank of each cold item, over the whole catalog, for a user typical of its style
    (state = the style's mean embedding, text query = the style's mean text)."""
    hidden = model.emb.shape[1]
    assert fitted.vectors.shape[1] == hidden + 1 + text.shape[1]
    ranks = []
    for c in cold_codes:
        same = np.flatnonzero(style == style[c])
        state = np.append(model.emb[same].mean(axis=0), 1.0)
        q = text[same].mean(axis=0)
        q /= np.linalg.norm(q)
        scores = fitted.vectors @ np.concatenate([state, fitted.text_weight * q])
        ranks.append(1 + int((scores > scores[c]).sum()))
    return float(np.mean(ranks))


def config(**kw) -> FusionConfig:
    return FusionConfig(ridge=30.0, kappa=1.0, half_life=3.0, **kw)


def test_tuned_cold_placement_ranks_held_out_items_higher(world):
    ds, split, model, text, style, cold_codes = world
    untuned = fit_fusion(model, split, text, config(pseudo_cold=0.0), half_life=3.0)
    tuned = fit_fusion(model, split, text, config(pseudo_cold=0.25), half_life=3.0)
    assert untuned.cold == ColdPlacement() and untuned.report["cold"]["tuned"] is False
    rep = tuned.report["cold"]
    assert rep["tuned"] and rep["pseudo_cold_items"] == round(0.25 * 36)
    assert tuned.cold != ColdPlacement()
    # tuned on validation: all users and the pseudo-cold targets both gain over untuned
    valid, untuned_valid = rep["valid"], rep["valid_untuned"]
    assert valid["ndcg@10"] > untuned_valid["ndcg@10"]
    assert valid["pseudo_cold_ndcg@10"] > untuned_valid["pseudo_cold_ndcg@10"]
    assert rep["valid_best_ndcg10"]["ndcg@10"] == pytest.approx(
        max(v[0] for v in rep["grid"].values()), abs=1e-5)
    # the real cold items (never seen, not part of the tuning) come up too
    before = cold_ranks(untuned, model, text, style, cold_codes)
    after = cold_ranks(tuned, model, text, style, cold_codes)
    assert after < before - 3, (before, after)
    # warm items keep their vectors with kappa > 0 only shifted by their (small) cold share
    warm = np.flatnonzero(tuned.counts > 0)
    assert np.all(tuned.counts[cold_codes] == 0) and len(warm) == ds.n_items - len(cold_codes)


def test_fixed_cold_parameters_are_used_as_given(world):
    _, split, model, text, *_ = world
    fixed = fit_fusion(model, split, text, config(cold_scale=2.0, cold_offset=0.5,
                                                  cold_text_scale=3.0), half_life=3.0)
    rep = fixed.report["cold"]
    # offsets are centred: 0 keeps the mean cold score of the untuned placement
    offset = (0.5 * rep["spread"] - (2.0 - 1.0) * rep["centre"]["projected"]
              - fixed.text_weight * (3.0 - 1.0) * rep["centre"]["text"])
    assert fixed.cold == ColdPlacement(2.0, pytest.approx(offset), 3.0)
    assert list(rep["grid"]) == ["scale=2.0,offset=0.5,text_scale=3.0"]


def test_cold_placement_validates_and_round_trips():
    with pytest.raises(ValueError):
        ColdPlacement(scale=0.0)
    c = ColdPlacement(2.0, -0.3, 4.0)
    assert ColdPlacement.from_dict(c.to_dict()) == c
    assert ColdPlacement.from_dict(None) == ColdPlacement()
    fc = FusionConfig(cold_offsets=(0.0, 1.0), cold_scale=2.0)
    assert FusionConfig.from_dict(fc.to_dict()) == fc



def test_a_cold_recall_floor_buys_cold_recall_with_warm_accuracy(world):
    _, split, model, text, *_ = world
    free = fit_fusion(model, split, text, config(pseudo_cold=0.25, cold_floor_k=3, cold_recall_k=3),
                      half_life=3.0).report["cold"]
    floor = free["valid"]["pseudo_cold_recall@3"] + 0.1
    held = fit_fusion(model, split, text, config(pseudo_cold=0.25, cold_floor_k=3, cold_recall_k=3,
                                                 cold_recall_floor=floor),
                      half_life=3.0).report["cold"]
    assert held["recall_floor"] == floor
    assert held["valid"]["pseudo_cold_recall@3"] >= floor
    assert held["valid"]["ndcg@10"] <= free["valid"]["ndcg@10"]
    reach = [v[0] for key, v in held["grid"].items()
             if fit_point_recall(held, key) >= floor]
    assert held["valid"]["ndcg@10"] == pytest.approx(max(reach), abs=1e-5)


def fit_point_recall(report, key):
    """Pseudo-cold Recall@floor_k of a grid point (the grid stores Recall@recall_k)."""
    cols = report["grid_columns"]
    return report["grid"][key][cols.index(f"pseudo_cold_recall@{report['floor_k']}")]
