"""The fused retriever (registry name ``fused``): sequential user states against item vectors
that blend behaviour and text (llmrank.retrieve.fusion), in one FAISS index.

- Warm items keep (almost) their behavioural vectors; items with few interactions lean on
  their text; items with none, including items added later with ``add_items``, are placed
  by their text alone, so they are retrievable from day one.
- Histories may contain such items: the sequential encoder reads their fused vector as the
  input embedding (the model's item table is tied between input and output).
- Free text works as a query: its embedding, projected into the behavioural space, is read
  as one more (pseudo) item at the end of the history.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from llmrank.config import Config, EmbedderConfig
from llmrank.data.dataset import Dataset
from llmrank.data.splits import LeaveOneOut
from llmrank.embed.base import Embedder
from llmrank.errors import IndexError_
from llmrank.index import VectorIndex, load_index
from llmrank.records import Item
from llmrank.retrieve.base import ProgressFn, no_progress
from llmrank.retrieve.catalog import merge_items, read_items, write_items
from llmrank.retrieve.fusion import (
    FusionConfig,
    TextProjection,
    choose_ridge,
    fuse,
    reliability_weights,
)
from llmrank.retrieve.manifest import DatasetInfo, EmbedderInfo, RetrieverManifest
from llmrank.retrieve.sequential.config import SequentialConfig
from llmrank.retrieve.sequential.model import SequentialModel
from llmrank.retrieve.sequential.retriever import (
    INDEX_DIR,
    MODEL_DIR,
    dataset_info,
    index_vectors,
    sequential_config,
)
from llmrank.retrieve.sequential.search import VectorSearchMixin

log = logging.getLogger(__name__)

PROJECTION_FILE = "projection.npz"
FUSION_FILE = "fusion.json"


def train_counts(split: LeaveOneOut) -> np.ndarray:
    """Interactions per item code in the split's training histories."""
    n = split.dataset.n_items
    if not split.train:
        return np.zeros(n, np.int64)
    return np.bincount(np.concatenate(split.train).astype(np.int64), minlength=n)


def embed_catalog(embedder: Embedder, items: Sequence[Item], batch_size: int = 64,
                  progress: ProgressFn = no_progress) -> np.ndarray:
    from llmrank.retrieve.text import embed_items

    return embed_items(embedder, items, batch_size=batch_size, progress=progress)


class FusedRetriever(VectorSearchMixin):
    """Register name and manifest kind: ``fused``."""

    name = "fused"
    kind = "fused"
    source = "fused"

    def __init__(self, model: SequentialModel, projection: TextProjection, index: VectorIndex,
                 items: Mapping[str, Item], counts: Mapping[str, int], kappa: float, *,
                 embedder: Embedder | None = None, embedder_config: EmbedderConfig | None = None,
                 dataset: DatasetInfo | None = None, report: dict[str, Any] | None = None) -> None:
        self.model = model
        self.projection = projection
        self.index = index
        self.items = dict(items)
        self.counts = dict(counts)  # training interactions per item id (0 / absent = cold)
        self.kappa = float(kappa)
        self._embedder = embedder
        self.embedder_config = embedder_config or EmbedderConfig()
        self.dataset = dataset or DatasetInfo(name="unknown", n_items=len(index))
        self.report = dict(report or {})

    # ---- construction -----------------------------------------------------------------
    @classmethod
    def build(cls, dataset: Dataset, config: Config | None = None, *,
              progress: ProgressFn = no_progress, embedder: Embedder | None = None,
              seq_config: SequentialConfig | None = None, fusion: FusionConfig | None = None,
              model: SequentialModel | None = None, text_vectors: np.ndarray | None = None,
              on_epoch: Callable[[Any], None] | None = None, **kwargs: Any) -> FusedRetriever:
        """Train (or take) a sequential model on every history but its last item, embed every
        catalog item's text, fit the projection on warm items, tune kappa on the last items,
        and index the fused vectors of the whole catalog."""
        from llmrank.retrieve.sequential.train import holdout_split, train_sequential

        cfg = config or Config()
        split = holdout_split(dataset)
        if model is None:
            scfg = sequential_config(cfg, seq_config)
            model = train_sequential(
                split, scfg, on_epoch=on_epoch,
                on_step=lambda d, t: progress("training sequential model", d, t)).model
        if len(model.item_ids) != dataset.n_items or model.item_ids != dataset.item_ids:
            raise IndexError_("the sequential model's items differ from the dataset's")
        emb = embedder
        if text_vectors is None:
            from llmrank.embed.factory import create_embedder

            emb = emb or create_embedder(cfg.embedder)
            items_list = [dataset.items[i] for i in dataset.item_ids]
            text_vectors = embed_catalog(emb, items_list, cfg.embedder.batch_size, progress)
        fcfg = fusion or FusionConfig.from_dict(
            dict(getattr(cfg.retriever, "options", {}).get("fusion", {}) or {}))
        fitted = fit_fusion(model, split, np.asarray(text_vectors, np.float32), fcfg)
        progress("indexing", 0, dataset.n_items)
        index = index_vectors(dataset.item_ids, fitted.vectors, cfg)
        progress("indexing", dataset.n_items, dataset.n_items)
        counts = {dataset.item_ids[c]: int(n) for c, n in enumerate(fitted.counts) if n}
        return cls(model, fitted.projection, index, dataset.items, counts, fitted.kappa,
                   embedder=emb, embedder_config=cfg.embedder,
                   dataset=dataset_info(dataset, cfg), report=fitted.report)

    @property
    def embedder(self) -> Embedder:
        """Loaded on first use: only text queries and ``add_items`` need it."""
        if self._embedder is None:
            from llmrank.embed.factory import create_embedder

            self._embedder = create_embedder(self.embedder_config)
        return self._embedder

    # ---- live catalog -----------------------------------------------------------------
    def add_items(self, items: Sequence[Item], text_vectors: np.ndarray | None = None) -> None:
        """Add new (or re-describe existing) items from their text alone: their vectors are
        text projections, blended with behaviour only if the model already knows them."""
        if not items:
            return
        tv = text_vectors if text_vectors is not None else embed_catalog(
            self.embedder, items, self.embedder_config.batch_size)
        projected = self.projection(tv)
        ids = [it.item_id for it in items]
        behaviour = np.zeros_like(projected)
        counts = np.array([self.counts.get(i, 0) for i in ids])
        known = [j for j, i in enumerate(ids) if self.model.has_item(i) and counts[j] > 0]
        if known:
            behaviour[known] = self.model.item_vectors()[self.model.codes([ids[j] for j in known])]
        self.index.add(ids, fuse(behaviour, projected, counts, self.kappa))
        self.items = merge_items(self.items, items)

    def remove_items(self, item_ids: Sequence[str]) -> int:
        for i in item_ids:
            self.items.pop(i, None)
        return self.index.remove(item_ids)

    # ---- queries ----------------------------------------------------------------------
    def input_sequence(self, history: Sequence[str]) -> np.ndarray:
        """Input embeddings of a history: the trained embedding for items the model learned,
        the indexed (text-derived) vector for the others; ids in neither are skipped."""
        learned = [self.model.has_item(i) and self.counts.get(i, 0) > 0 for i in history]
        keep = [j for j, i in enumerate(history) if learned[j] or i in self.index]
        out = np.zeros((len(keep), self.model.config.hidden), dtype=np.float32)
        from_model = [r for r, j in enumerate(keep) if learned[j]]
        from_index = [r for r, j in enumerate(keep) if not learned[j]]
        if from_model:
            out[from_model] = self.model.input_embeddings(
                self.model.codes([history[keep[r]] for r in from_model]))
        if from_index:
            out[from_index] = self.index.reconstruct(
                [history[keep[r]] for r in from_index])[:, :-1]
        return out

    def query_vectors(self, histories: Sequence[Sequence[str]],
                      texts: Sequence[str | None] | None = None) -> np.ndarray:
        seqs = [self.input_sequence(h) for h in histories]
        if texts is not None:
            wanted = [j for j, t in enumerate(texts) if t and t.strip()]
            if wanted:
                tv = self.embedder.encode([str(texts[j]) for j in wanted])
                pseudo = self.projection(tv)[:, :-1]
                for row, j in enumerate(wanted):
                    seqs[j] = np.vstack([seqs[j], pseudo[row: row + 1]])
        return self.model.user_vectors_from_embeddings(seqs)

    # ---- persistence ------------------------------------------------------------------
    def manifest(self) -> RetrieverManifest:
        emb = self._embedder
        info = EmbedderInfo(backend=self.embedder_config.backend, model=self.embedder_config.model,
                            model_id=emb.model_id if emb else self.embedder_config.model,
                            dim=self.projection.text_dim)
        describe = getattr(self.index, "describe", None)
        settings = {"kappa": self.kappa, "ridge": self.projection.ridge,
                    "model": self.model.config.to_dict(), "training": self.model.meta,
                    "fusion": self.report}
        return RetrieverManifest(kind=self.kind, dim=self.index.dim, n_items=len(self.index),
                                 dataset=self.dataset, embedder=info,
                                 index=describe() if describe else {"kind": self.index.kind},
                                 settings=settings)

    def save(self, path: Path) -> RetrieverManifest:
        path = Path(path)
        self.model.save(path / MODEL_DIR)
        self.index.save(path / INDEX_DIR)
        self.projection.save(path / PROJECTION_FILE)
        (path / FUSION_FILE).write_text(json.dumps(
            {"kappa": self.kappa, "counts": self.counts, "report": self.report}, indent=1))
        write_items(path, (self.items[i] for i in self.index.ids() if i in self.items))
        return self.manifest()

    @classmethod
    def load(cls, path: Path, manifest: RetrieverManifest, *, embedder: Embedder | None = None,
             use_gpu: bool = True, device: str | None = None, **kwargs: Any) -> FusedRetriever:
        path = Path(path)
        model = SequentialModel.load(path / MODEL_DIR, device=device)
        index = load_index(path / INDEX_DIR, use_gpu=use_gpu)
        projection = TextProjection.load(path / PROJECTION_FILE)
        state = json.loads((path / FUSION_FILE).read_text())
        emb_cfg = EmbedderConfig()
        if manifest.embedder is not None:
            emb_cfg = EmbedderConfig(backend=manifest.embedder.backend,
                                     model=manifest.embedder.model)
        return cls(model, projection, index, read_items(path), state["counts"],
                   float(state["kappa"]), embedder=embedder, embedder_config=emb_cfg,
                   dataset=manifest.dataset, report=state.get("report"))


class FittedFusion:
    """Result of ``fit_fusion``: fused vectors of every dataset item and how they were made."""

    def __init__(self, vectors: np.ndarray, projection: TextProjection, kappa: float,
                 counts: np.ndarray, report: dict[str, Any]) -> None:
        self.vectors = vectors
        self.projection = projection
        self.kappa = kappa
        self.counts = counts
        self.report = report


def fit_fusion(model: SequentialModel, split: LeaveOneOut, text_vectors: np.ndarray,
               config: FusionConfig) -> FittedFusion:
    """Fit the projection on warm items and pick kappa by validation NDCG@10."""
    from llmrank.retrieve.sequential.evaluate import split_ranks, summarize

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
    emb_table = model.input_embeddings(np.arange(model.n_items))
    scores_by_kappa: dict[str, float] = {}
    best_kappa, best, best_vectors = float(kappas[0]), -1.0, None
    for kappa in kappas:
        vectors = fuse(behaviour, projected, counts, float(kappa))
        inputs = np.where((counts > 0)[:, None], emb_table, vectors[:, :-1])

        def score(hists: Sequence[np.ndarray], vectors: np.ndarray = vectors,
                  inputs: np.ndarray = inputs) -> np.ndarray:
            users = model.user_vectors_from_embeddings([inputs[h] for h in hists])
            return users @ vectors.T

        value = summarize(split_ranks(score, split, "valid"))["ndcg@10"] \
            if len(kappas) > 1 else float("nan")
        scores_by_kappa[str(kappa)] = value
        if len(kappas) == 1 or value > best:
            best_kappa, best, best_vectors = float(kappa), value, vectors
    assert best_vectors is not None
    log.info("fusion: ridge %.3g, kappa %.3g (valid NDCG@10 by kappa: %s)", ridge, best_kappa,
             scores_by_kappa)
    report = {"ridge": ridge, "kappa": best_kappa, "valid_ndcg10_by_kappa": scores_by_kappa,
              "warm_items": len(warm), "cold_items": int(len(counts) - len(warm))}
    return FittedFusion(best_vectors, projection, best_kappa, counts, report)
