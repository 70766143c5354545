"""Beyond-accuracy metrics of recommendation lists, and the position-bias probe.

Accuracy alone rewards recommending blockbusters; these say what the lists look like:
catalog coverage (how much of the catalog is ever shown), intra-list diversity (mean
pairwise distance of item vectors the caller supplies, e.g. text embeddings or genres),
novelty (mean self-information -log2 p(item) under training popularity) and popularity bias
(mean popularity percentile). Lists are (n_users, L) item codes with -1 padding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from llmrank.data.dataset import Dataset


def _valid(lists: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    top = np.asarray(lists)[:, :k]
    return top, top >= 0


def catalog_coverage(lists: np.ndarray, n_items: int, k: int = 10) -> float:
    """Fraction of the catalog that appears in at least one user's top-k (aggregate, so it
    has no per-user values and no bootstrap CI)."""
    top, ok = _valid(lists, k)
    return float(len(np.unique(top[ok]))) / n_items if n_items else 0.0


def intra_list_diversity(lists: np.ndarray, vectors: np.ndarray, k: int = 10) -> np.ndarray:
    """Per user, the mean pairwise cosine distance (1 - cos) among the top-k items' vectors.
    Users with fewer than two items get NaN. Zero vectors (no features) are distance 1 from
    everything."""
    v = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    unit = np.divide(v, norms, out=np.zeros_like(v), where=norms > 0)
    top, ok = _valid(lists, k)
    out = np.full(len(top), np.nan)
    for u in range(len(top)):
        items = top[u][ok[u]]
        m = len(items)
        if m < 2:
            continue
        sims = unit[items] @ unit[items].T
        out[u] = 1.0 - (sims.sum() - np.trace(sims)) / (m * (m - 1))
    return out


def item_probabilities(popularity: np.ndarray) -> np.ndarray:
    """p(item) from training interaction counts, add-one smoothed so that items never seen
    in training have finite self-information."""
    pop = np.asarray(popularity, dtype=np.float64)
    return (pop + 1.0) / (pop.sum() + len(pop))


def novelty(lists: np.ndarray, popularity: np.ndarray, k: int = 10) -> np.ndarray:
    """Per user, the mean self-information -log2 p(item) of the top-k items (bits)."""
    info = -np.log2(item_probabilities(popularity))
    return _mean_over_list(lists, info, k)


def popularity_percentile(popularity: np.ndarray) -> np.ndarray:
    """Each item's popularity percentile in [0, 1] among catalog items (ties averaged):
    1 = the most popular item, 0 = the least."""
    from scipy.stats import rankdata

    pop = np.asarray(popularity, dtype=np.float64)
    if len(pop) < 2:
        return np.ones(len(pop))
    return (rankdata(pop, method="average") - 1.0) / (len(pop) - 1.0)


def popularity_bias(lists: np.ndarray, popularity: np.ndarray, k: int = 10) -> np.ndarray:
    """Per user, the mean popularity percentile of the top-k items (0.5 = the catalog's
    median item; a most-popular recommender is near 1)."""
    return _mean_over_list(lists, popularity_percentile(popularity), k)


def _mean_over_list(lists: np.ndarray, values: np.ndarray, k: int) -> np.ndarray:
    top, ok = _valid(lists, k)
    vals = np.where(ok, values[np.where(ok, top, 0)], 0.0)
    counts = ok.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, vals.sum(axis=1) / np.maximum(counts, 1), np.nan)


@dataclass(frozen=True)
class PositionBias:
    """Mean of a per-user metric grouped by where the target sat in the candidate list the
    ranker was shown (0 = first). A position-blind ranker is flat; LLM rankers are often
    not (they favour the first or last candidates)."""

    metric: str
    positions: list[int]
    means: list[float]
    counts: list[int]
    half_widths: list[float]  # 1.96 * standard error of each position's mean

    def spread(self) -> float:
        """max - min of the per-position means (positions with users only)."""
        return float(max(self.means) - min(self.means)) if self.means else 0.0


def position_bias(target_pos: np.ndarray, values: np.ndarray, metric: str) -> PositionBias | None:
    """Group ``values`` by ``target_pos`` (users whose target was not shown are skipped);
    None for protocols without a candidate list (full ranking)."""
    pos = np.asarray(target_pos)
    ok = pos >= 0
    if not ok.any():
        return None
    positions = sorted(int(p) for p in np.unique(pos[ok]))
    means = [float(np.mean(values[pos == p])) for p in positions]
    counts = [int(np.sum(pos == p)) for p in positions]
    half = [float(1.96 * np.std(values[pos == p], ddof=1) / np.sqrt(c)) if c > 1 else 0.0
            for p, c in zip(positions, counts, strict=True)]
    return PositionBias(metric, positions, means, counts, half)


def genre_vectors(dataset: Dataset) -> np.ndarray:
    """Multi-hot genre vectors per item code: a model-free item representation for
    intra-list diversity (text embeddings can be passed instead)."""
    item_ids, items = dataset.item_ids, dataset.items
    vocab: dict[str, int] = {}
    for iid in item_ids:
        for g in items[iid].genres:
            vocab.setdefault(g, len(vocab))
    out = np.zeros((len(item_ids), max(1, len(vocab))), dtype=np.float32)
    for code, iid in enumerate(item_ids):
        for g in items[iid].genres:
            out[code, vocab[g]] = 1.0
    return out
