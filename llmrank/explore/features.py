"""Item side information the exploration stage uses: embeddings (MMR similarity, linear
bandit context), categorical attributes such as genre (calibration, max-per-attribute rules)
and popularity (novelty). Built once per catalog and shared by all policies."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from llmrank.embed.base import Embedder


@dataclass
class ItemFeatures:
    """Side information keyed by item id. ``attributes[name]`` is (values, matrix) with
    ``matrix[i, v] = 1`` when item i has value v (multi-valued, e.g. several genres)."""

    item_ids: list[str]
    embeddings: np.ndarray | None = None  # (n_items, d), rows L2-normalised (zeros = unknown)
    attributes: dict[str, tuple[list[str], np.ndarray]] = field(default_factory=dict)
    popularity: np.ndarray | None = None  # interaction counts
    n_users: int = 1  # population size for self-information novelty

    def __post_init__(self) -> None:
        self.index = {iid: c for c, iid in enumerate(self.item_ids)}

    def codes(self, item_ids: Iterable[str]) -> np.ndarray:
        """Codes of the ids, -1 for ids this table does not know."""
        return np.fromiter((self.index.get(i, -1) for i in item_ids), dtype=np.int64)

    def embedding_rows(self, codes: np.ndarray) -> np.ndarray | None:
        if self.embeddings is None:
            return None
        out = np.zeros((len(codes), self.embeddings.shape[1]), np.float64)
        known = codes >= 0
        out[known] = self.embeddings[codes[known]]
        return out

    def attribute_rows(self, name: str, codes: np.ndarray) -> np.ndarray | None:
        if name not in self.attributes:
            return None
        _, mat = self.attributes[name]
        out = np.zeros((len(codes), mat.shape[1]), np.float64)
        known = codes >= 0
        out[known] = mat[codes[known]]
        return out

    def novelty(self, codes: np.ndarray) -> np.ndarray | None:
        """Self-information -log2(p(i)) with p(i) = (interactions + 1) / (n_users + 1): rare
        items carry more information (Zhou et al. 2010)."""
        if self.popularity is None:
            return None
        pop = np.zeros(len(codes))
        known = codes >= 0
        pop[known] = self.popularity[codes[known]]
        p = np.clip((pop + 1.0) / (self.n_users + 1.0), 1e-12, 1.0)
        return np.asarray(-np.log2(p))

    def user_vector(self, history: Sequence[str], last: int = 50,
                    half_life: float = 20.0) -> np.ndarray | None:
        """Recency-weighted mean embedding of the last ``last`` history items, normalised."""
        if self.embeddings is None or not history:
            return None
        codes = self.codes(history[-last:])
        codes = codes[codes >= 0]
        if not len(codes):
            return None
        age = np.arange(len(codes))[::-1]
        w = 0.5 ** (age / half_life)
        v = (w[:, None] * self.embeddings[codes]).sum(0)
        norm = np.linalg.norm(v)
        return v / norm if norm > 0 else v

    def distribution(self, name: str, history: Sequence[str]) -> np.ndarray | None:
        """The user's mix over an attribute's values (Steck 2018: p(g|u) = mean over history of
        p(g|i), each item's values sharing weight equally)."""
        rows = self.attribute_rows(name, self.codes(history))
        if rows is None or not len(rows):
            return None
        share = rows / np.maximum(rows.sum(1, keepdims=True), 1.0)
        total = share.sum(0)
        s = total.sum()
        return total / s if s > 0 else None

    def reduced(self, dim: int) -> tuple[ItemFeatures, PCA | None]:
        """A copy whose embeddings have at most ``dim`` PCA dimensions (attributes and
        popularity shared), and the PCA that maps other vectors (a caller's user vector) the
        same way; the same table and None when there is nothing to reduce."""
        if self.embeddings is None or not 0 < dim < self.embeddings.shape[1]:
            return self, None
        pca = PCA.fit(self.embeddings, dim)
        if pca.components is None:
            return self, None
        return replace(self, embeddings=pca.transform(self.embeddings)), pca

    @classmethod
    def from_dataset(cls, dataset: object, *, embeddings: np.ndarray | None = None,
                     interaction_mask: np.ndarray | None = None,
                     attributes: Mapping[str, str] | None = None) -> ItemFeatures:
        """Features of a llmrank Dataset: genres (and any item attribute named in
        ``attributes`` as {feature name: attribute key}) and popularity counted over the masked
        interactions only (so a replay does not see the future)."""
        from llmrank.data.dataset import Dataset

        assert isinstance(dataset, Dataset)
        ids = list(dataset.item_ids)
        attrs: dict[str, tuple[list[str], np.ndarray]] = {}
        genres = sorted({g for it in dataset.items.values() for g in it.genres})
        if genres:
            gi = {g: j for j, g in enumerate(genres)}
            mat = np.zeros((len(ids), len(genres)), np.float32)
            for c, iid in enumerate(ids):
                for g in dataset.items[iid].genres:
                    mat[c, gi[g]] = 1.0
            attrs["genre"] = (genres, mat)
        for feat, key in (attributes or {}).items():
            values = sorted({str(it.attributes[key]) for it in dataset.items.values()
                             if key in it.attributes})
            vi = {v: j for j, v in enumerate(values)}
            mat = np.zeros((len(ids), len(values)), np.float32)
            for c, iid in enumerate(ids):
                val = dataset.items[iid].attributes.get(key)
                if val is not None:
                    mat[c, vi[str(val)]] = 1.0
            attrs[feat] = (values, mat)
        inter = dataset.interactions
        items = inter.item if interaction_mask is None else inter.item[interaction_mask]
        users = inter.user if interaction_mask is None else inter.user[interaction_mask]
        pop = np.bincount(items, minlength=len(ids)).astype(np.float64)
        n_users = max(1, len(np.unique(users)))
        return cls(ids, embeddings, attrs, pop, n_users)


def features_for(dataset: object, retriever: object | None = None) -> ItemFeatures:
    """The Recommender's item features: genres and popularity from the dataset, and item
    embeddings from the retriever's vector index when it has one (``index.reconstruct``), so
    MMR, calibration, caps and the linear bandit work out of the box. Embeddings are optional:
    a retriever without an index (or a failing reconstruct) leaves them out, with a log line."""
    import logging

    from llmrank.data.dataset import Dataset

    assert isinstance(dataset, Dataset)
    emb = None
    index = getattr(retriever, "index", None)
    if index is not None and hasattr(index, "reconstruct"):
        try:
            vecs = np.asarray(index.reconstruct(list(dataset.item_ids)), dtype=np.float64)
            norms = np.linalg.norm(vecs, axis=1, keepdims=True)
            emb = np.divide(vecs, norms, out=np.zeros_like(vecs), where=norms > 0)
        except Exception as exc:  # an index may not hold every catalog item (filters, removals)
            logging.getLogger(__name__).info("explore: no item embeddings from the index (%s)", exc)
    return ItemFeatures.from_dataset(dataset, embeddings=emb)


def text_embeddings(dataset: object, dim: int = 32, *, embedder: Embedder | None = None) -> np.ndarray:
    """Item vectors from text alone: the configured sentence-transformers embedder on each
    item's rendered text (title, year, genres, tags), reduced to ``dim`` by PCA and
    L2-normalised. What a platform without an interaction log can give the linear bandit:
    no user has to have touched an item for it to get a vector. Tags are left out: they are
    users' interactions (MovieLens tags.csv), kept without their times, so in a replay they
    would describe items with what users tagged after the request."""
    from dataclasses import replace as with_fields

    from llmrank.data.dataset import Dataset
    from llmrank.retrieve.text import embed_items

    assert isinstance(dataset, Dataset)
    if embedder is None:
        from llmrank.embed.factory import create_embedder

        embedder = create_embedder()
    items = [with_fields(dataset.items[iid], tags=()) for iid in dataset.item_ids]
    emb = np.asarray(embed_items(embedder, items), np.float64)
    return PCA.fit(emb, dim).transform(emb)


@dataclass
class PCA:
    """Centre and project item vectors onto their top ``dim`` principal directions, rows
    L2-normalised afterwards. Zero rows (items without a vector) are left out of the fit and
    stay zero. Used for the replays' text vectors and, when asked, the linear bandit's
    features (fewer weights, cheaper updates; the full 384 text dimensions learned more in
    the replays of eval/RESULTS.md section 7(c))."""

    mean: np.ndarray
    components: np.ndarray | None  # (dim, d); None keeps every dimension

    @classmethod
    def fit(cls, matrix: np.ndarray, dim: int) -> PCA:
        x = np.asarray(matrix, np.float64)
        known = np.linalg.norm(x, axis=1) > 0
        mean = x[known].mean(0) if known.any() else np.zeros(x.shape[1])
        comps = None
        if 0 < dim < x.shape[1] and known.sum() > 1:
            _, _, vt = np.linalg.svd(x[known] - mean, full_matrices=False)
            comps = vt[:dim]
        return cls(mean, comps)

    def transform(self, vectors: np.ndarray) -> np.ndarray:
        x = np.atleast_2d(np.asarray(vectors, np.float64))
        known = np.linalg.norm(x, axis=1) > 0
        y = x - self.mean
        if self.components is not None:
            y = y @ self.components.T
        y[~known] = 0.0
        norms = np.linalg.norm(y, axis=1, keepdims=True)
        return np.asarray(np.divide(y, norms, out=np.zeros_like(y), where=norms > 0))
