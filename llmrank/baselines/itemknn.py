"""Item-kNN: cosine similarity between item columns of the visible interaction matrix
(optionally shrunk towards 0 for items with few co-occurrences), keeping each item's
``neighbors`` most similar items; a user's score for an item is the sum of its similarities
to the user's history. Strong on MovieLens, cheap, and deterministic.

Every item with no neighbour in the history scores exactly 0, so under the 20-candidate
protocol the target often ties with most candidates; by default those ties are broken by
visible popularity (``tie_break='popularity'``; what is still tied goes to the protocol's
tie policy). With ``tie_break='none'`` the pessimistic policy puts a zero-scored target last
among the zeros (ml-latest-small 20 candidates, 5 neighbours: NDCG@10 0.32 instead of 0.65)."""

from __future__ import annotations

from typing import Any

import numpy as np

from llmrank.baselines.base import MatrixRanker, TieBreak


class ItemKNNRanker(MatrixRanker):
    name = "itemknn"

    def __init__(self, neighbors: int = 100, shrinkage: float = 0.0, block: int = 512,
                 tie_break: TieBreak = "popularity") -> None:
        super().__init__(tie_break)
        self.neighbors = neighbors
        self.shrinkage = shrinkage
        self.block = block
        self.similarity: Any = None  # csr (n_items x n_items): row i = neighbors of item i

    def _fit(self, matrix: Any) -> None:
        from scipy import sparse

        x = sparse.csc_matrix(matrix, dtype=np.float32)
        xt = sparse.csr_matrix(x.T)
        n_items = x.shape[1]
        norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=0)).reshape(-1))
        k = min(self.neighbors, max(1, n_items - 1))
        rows, cols, vals = [], [], []
        # blocks of items keep the dense co-occurrence slab at block x n_items
        for start in range(0, n_items, self.block):
            stop = min(n_items, start + self.block)
            co = np.asarray((xt[start:stop] @ x).todense(), dtype=np.float64)
            denom = norms[start:stop, None] * norms[None, :] + self.shrinkage
            sim = np.divide(co, denom, out=np.zeros_like(co), where=denom > 0)
            sim[np.arange(stop - start), np.arange(start, stop)] = 0.0
            top = np.argpartition(-sim, k - 1, axis=1)[:, :k]
            top_vals = np.take_along_axis(sim, top, axis=1)
            keep = top_vals > 0
            rows.append(np.repeat(np.arange(start, stop), k)[keep.reshape(-1)])
            cols.append(top[keep])
            vals.append(top_vals[keep])
        self.similarity = sparse.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
            shape=(n_items, n_items),
        )

    def _full(self, users: np.ndarray) -> np.ndarray:
        hist = self.matrix[users]
        return np.asarray((hist @ self.similarity).todense(), dtype=np.float64)
