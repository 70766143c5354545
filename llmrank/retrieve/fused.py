"""The fused retriever (registry name ``fused``): one FAISS inner-product search scores
items by behaviour and text together (llmrank.retrieve.fusion_fit has the formula).

Index rows are [f_i, t_i]: f_i blends the sequential model's item vector with a projection
of the item's text (llmrank.retrieve.fusion), t_i is the text embedding. Queries are
[s_u, 1, beta q_u]: the sequential user state and the recency-weighted text of the history.

- Warm items keep (almost) their behavioural vectors; items with few interactions lean on
  their text; items with none, including items added later with ``add_items``, are placed
  by their text alone, so they are retrievable from day one. How high a text-only item
  scores (``ColdPlacement``: scale, bias offset, text weight) is tuned on pseudo-cold items
  at build time and folded into its index row, so the search stays one inner product.
- Histories may contain such items: the sequential encoder reads their blended vector as
  the input embedding (the model's item table is tied between input and output).
- Free text works as a query: its embedding, projected into the behavioural space, is read
  as one more (pseudo) item at the end of the history, and joins the text part of the query.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from llmrank.config import Config, EmbedderConfig
from llmrank.data.dataset import Dataset
from llmrank.embed.base import Embedder, normalize_rows
from llmrank.errors import IndexError_
from llmrank.index import VectorIndex, load_index
from llmrank.records import Item
from llmrank.retrieve import query as qv
from llmrank.retrieve.base import ProgressFn, no_progress
from llmrank.retrieve.catalog import merge_items, read_items, write_items
from llmrank.retrieve.fusion import (
    ColdPlacement,
    FusionConfig,
    TextProjection,
    item_rows,
    text_multipliers,
)
from llmrank.retrieve.manifest import (
    DatasetInfo,
    EmbedderInfo,
    RetrieverManifest,
    recorded_embedder,
    recorded_model,
)
from llmrank.retrieve.sequential.config import SequentialConfig, default_fused_ensemble
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


def embed_catalog(embedder: Embedder, items: Sequence[Item], batch_size: int = 64,
                  progress: ProgressFn = no_progress) -> np.ndarray:
    """Text embeddings of ``render_item`` (the text retriever's, so caches are shared)."""
    from llmrank.retrieve.text import embed_items

    return embed_items(embedder, items, batch_size=batch_size, progress=progress)


def _options(embedder: Embedder) -> str:
    """An embedder's settings that change its vectors (``Embedder.options``; '' = none)."""
    raw = getattr(embedder, "inner", embedder)
    return str(getattr(raw, "options", ""))


def _described(options: str | None) -> str:
    return f" ({options})" if options else ""


class FusedRetriever(VectorSearchMixin):
    """Register name and manifest kind: ``fused``."""

    name = "fused"
    kind = "fused"
    source = "fused"

    def __init__(self, model: SequentialModel, projection: TextProjection, index: VectorIndex,
                 items: Mapping[str, Item], counts: Mapping[str, int], kappa: float,
                 text_weight: float = 0.0, *, half_life: float = 10.0,
                 embedder: Embedder | None = None, embedder_config: EmbedderConfig | None = None,
                 dataset: DatasetInfo | None = None, report: dict[str, Any] | None = None,
                 cold: ColdPlacement | None = None, text_model: str | None = None,
                 text_options: str | None = None) -> None:
        self.model = model
        self.projection = projection
        self.index = index
        self.items = dict(items)
        self.counts = dict(counts)  # training interactions per item id (0 / absent = cold)
        self.kappa = float(kappa)
        self.text_weight = float(text_weight)
        self.half_life = float(half_life)
        self._embedder = embedder
        self.embedder_config = embedder_config or EmbedderConfig()
        self.dataset = dataset or DatasetInfo(name="unknown", n_items=len(index))
        self.report = dict(report or {})
        self.cold = cold or ColdPlacement()
        self._hidden = model.config.hidden
        # model id of the embedder that made the indexed text vectors (None = not known)
        self.text_model = text_model or (embedder.model_id if embedder else None)
        # and its vector-changing options (Embedder.options; None = not known: an index
        # saved before they were recorded, or no embedder yet)
        self.text_options = text_options if text_options is not None else (
            _options(embedder) if embedder and not text_model else None)

    # ---- construction -----------------------------------------------------------------
    @classmethod
    def build(cls, dataset: Dataset, config: Config | None = None, *,
              progress: ProgressFn = no_progress, embedder: Embedder | None = None,
              seq_config: SequentialConfig | None = None, fusion: FusionConfig | None = None,
              model: SequentialModel | None = None, text_vectors: np.ndarray | None = None,
              on_epoch: Callable[[Any], None] | None = None, **kwargs: Any) -> FusedRetriever:
        """Train (or take) a sequential model on every history but its last item, embed every
        catalog item's text, fit the projection on warm items, tune the blend on the last
        items, and index the fused vectors of the whole catalog.

        With ``refit`` in the sequential config the blend is tuned on the early-stopped model
        first, and only then is the model retrained on the last items too and the tuned
        blend applied to it (tuning on the refitted model would grade it on items it
        trained on)."""
        from llmrank.retrieve.fusion_fit import fit_fusion, refit_fusion
        from llmrank.retrieve.sequential.ensemble import (
            refit_model,
            train_model,
            wants_refit,
            without_refit,
        )
        from llmrank.retrieve.sequential.train import holdout_split

        cfg = config or Config()
        split = holdout_split(dataset)
        scfg: SequentialConfig | None = None

        def on_step(done: int, total: int) -> None:
            progress("training sequential model", done, total)

        if model is None:
            scfg = sequential_config(cfg, seq_config)
            if seq_config is None and "ensemble" not in (
                    cfg.retriever.options.get("sequential") or {}):
                scfg = replace(scfg, ensemble=default_fused_ensemble(scfg.model, scfg.seed))
            model = train_model(split, without_refit(scfg), on_epoch=on_epoch, on_step=on_step)
        if model.item_ids != dataset.item_ids:
            raise IndexError_("the sequential model's items differ from the dataset's")
        emb = embedder
        emb_cfg = cfg.embedder
        if embedder is not None:  # recorded, so that a loaded index makes this one again
            emb_cfg = emb_cfg.model_copy(update={"backend": embedder.name,
                                                 "model": embedder.model_id})
        if text_vectors is None:
            from llmrank.embed.factory import create_embedder

            emb = emb or create_embedder(cfg.embedder)
            text_vectors = embed_catalog(emb, [dataset.items[i] for i in dataset.item_ids],
                                         cfg.embedder.batch_size, progress)
        fcfg = fusion or FusionConfig.from_dict(
            dict(cfg.retriever.options.get("fusion", {}) or {}))
        half_life = (fcfg.half_life if fcfg.half_life is not None
                     else cfg.retriever.recency_half_life)
        text_vectors = np.asarray(text_vectors, np.float32)
        fitted = fit_fusion(model, split, text_vectors, fcfg, half_life)
        if scfg is not None and wants_refit(scfg):
            model = refit_model(split, scfg, model, on_step)
            fitted = refit_fusion(model, split, text_vectors, fcfg, fitted, half_life)
        progress("indexing", 0, dataset.n_items)
        index = index_vectors(dataset.item_ids, fitted.vectors, cfg)
        progress("indexing", dataset.n_items, dataset.n_items)
        counts = {dataset.item_ids[c]: int(n) for c, n in enumerate(fitted.counts) if n}
        return cls(model, fitted.projection, index, dataset.items, counts, fitted.kappa,
                   fitted.text_weight, half_life=half_life, embedder=emb,
                   embedder_config=emb_cfg, dataset=dataset_info(dataset, cfg),
                   report=fitted.report, cold=fitted.cold,
                   text_model=emb.model_id if emb is not None else None,
                   text_options=_options(emb) if emb is not None else None)

    @property
    def embedder(self) -> Embedder:
        """Loaded on first use: only text queries and ``add_items`` need it."""
        if self._embedder is None:
            from llmrank.embed.factory import create_embedder

            self._embedder = create_embedder(self.embedder_config)
        return self._embedder

    def text_embedder(self) -> Embedder:
        """``embedder``, checked to be the model that made the indexed text vectors: text
        embedded by another model (even of the same dim) would score garbage."""
        emb = self.embedder
        options = _options(emb)
        if self.text_model is None:
            self.text_model, self.text_options = emb.model_id, options
        elif self.text_options is None and emb.model_id == self.text_model:
            self.text_options = options  # not recorded (an older index): trust the first
        if (emb.model_id, options) != (self.text_model, self.text_options):
            raise IndexError_(f"the index's text was embedded by {self.text_model!r}"
                              f"{_described(self.text_options)}, not {emb.model_id!r}"
                              f"{_described(options)}: pass that embedder (embedder=...)")
        return emb

    # ---- live catalog -----------------------------------------------------------------
    def add_items(self, items: Sequence[Item], text_vectors: np.ndarray | None = None) -> None:
        """Add new (or re-describe existing) items from their text alone: their vectors are
        text projections, blended with behaviour only if the model already knows them."""
        if not items:
            return
        tv = np.asarray(text_vectors if text_vectors is not None else embed_catalog(
            self.text_embedder(), items, self.embedder_config.batch_size), dtype=np.float32)
        projected = self.projection(tv)
        ids = [it.item_id for it in items]
        behaviour = np.zeros_like(projected)
        counts = self._learned_counts(ids)
        known = np.flatnonzero(counts > 0)
        if len(known):
            behaviour[known] = self.model.item_vectors()[self.model.codes([ids[j] for j in known])]
        self.index.add(ids, item_rows(behaviour, projected, tv, counts, self.kappa, self.cold))
        self.items = merge_items(self.items, items)

    def remove_items(self, item_ids: Sequence[str]) -> int:
        for i in item_ids:
            self.items.pop(i, None)
        return self.index.remove(item_ids)

    def _learned_counts(self, ids: Sequence[str]) -> np.ndarray:
        """Training interactions of items the model has a vector for (0 for the others)."""
        return np.array([self.counts.get(i, 0) if self.model.has_item(i) else 0 for i in ids],
                        dtype=np.int64)

    # ---- queries ----------------------------------------------------------------------
    def _history_parts(self, history: Sequence[str]) -> tuple[np.ndarray, np.ndarray | None]:
        """(input embeddings, text query or None) of a history. Inputs are the trained
        embedding for items the model learned and the indexed (text-derived) vector for the
        others; ids unknown to the index are skipped."""
        recent_text = qv.useful_length(self.half_life)
        window = max(self.model.config.max_len, recent_text or len(history))
        hist = [i for i in list(history)[-window:] if i in self.index]
        if not hist:
            return np.zeros((0, self._hidden), np.float32), None
        stored = self.index.reconstruct(hist)
        # a cold row holds [a (P t)[:-1], ...]: its input embedding is the projection P t
        inputs = stored[:, : self._hidden] / np.float32(self.cold.scale)
        counts = self._learned_counts(hist)
        learned = np.flatnonzero(counts > 0)
        if len(learned):
            inputs[learned] = self.model.input_embeddings(
                self.model.codes([hist[j] for j in learned]))
        texts = stored[:, self._hidden + 1:]
        if self.cold.text_scale != 1.0:  # rows hold m_i t_i (fusion.item_rows)
            m = text_multipliers(counts, self.kappa, self.cold)
            texts = texts / m[:, None].astype(np.float32)
        text_q = qv.weighted_query(texts[-recent_text:] if recent_text else texts,
                                   self.half_life)
        return inputs, text_q

    def query_vectors(self, histories: Sequence[Sequence[str]],
                      texts: Sequence[str | None] | None = None) -> np.ndarray:
        parts = [self._history_parts(h) for h in histories]
        seqs = [p[0] for p in parts]
        text_q = np.zeros((len(histories), self.projection.text_dim), np.float32)
        for row, (_, q) in enumerate(parts):
            if q is not None:
                text_q[row] = q
        wanted = [j for j, t in enumerate(texts or []) if t and t.strip()]
        if wanted and texts is not None:
            emb = self.text_embedder()
            raw: Embedder = getattr(emb, "inner", emb)  # queries bypass the catalog's disk cache
            tv = raw.encode([str(texts[j]) for j in wanted])
            pseudo = self.projection(tv)[:, : self._hidden]
            for row, j in enumerate(wanted):
                seqs[j] = np.vstack([seqs[j], pseudo[row: row + 1]])
                text_q[j] = qv.combine(parts[j][1], tv[row])
        users = self.model.user_vectors_from_embeddings(seqs)
        return np.hstack([users, self.text_weight * normalize_rows(text_q)])

    # ---- persistence ------------------------------------------------------------------
    def manifest(self) -> RetrieverManifest:
        info = EmbedderInfo(backend=self.embedder_config.backend,
                            model=recorded_model(self.embedder_config.model),
                            model_id=self.text_model or self.embedder_config.model,
                            options=self.text_options or "",
                            dim=self.projection.text_dim)
        describe = getattr(self.index, "describe", None)
        settings = {"kappa": self.kappa, "text_weight": self.text_weight,
                    "recency_half_life": self.half_life, "ridge": self.projection.ridge,
                    "cold": self.cold.to_dict(), "model": self.model.config.to_dict(),
                    "training": self.model.meta, "fusion": self.report}
        return RetrieverManifest(kind=self.kind, dim=self.index.dim, n_items=len(self.index),
                                 dataset=self.dataset, embedder=info,
                                 index=describe() if describe else {"kind": self.index.kind},
                                 settings=settings)

    def save(self, path: Path) -> RetrieverManifest:
        path = Path(path)
        self.model.save(path / MODEL_DIR)
        self.index.save(path / INDEX_DIR)
        self.projection.save(path / PROJECTION_FILE)
        state = {"kappa": self.kappa, "text_weight": self.text_weight,
                 "half_life": self.half_life, "cold": self.cold.to_dict(),
                 "counts": self.counts, "report": self.report, "text_model": self.text_model,
                 "text_options": self.text_options}
        (path / FUSION_FILE).write_text(json.dumps(state, indent=1))
        write_items(path, (self.items[i] for i in self.index.ids() if i in self.items))
        return self.manifest()

    @classmethod
    def load(cls, path: Path, manifest: RetrieverManifest, *, embedder: Embedder | None = None,
             use_gpu: bool = True, device: str | None = None,
             embedder_config: EmbedderConfig | None = None, **kwargs: Any) -> FusedRetriever:
        path = Path(path)
        model = SequentialModel.load(path / MODEL_DIR, device=device)
        index = load_index(path / INDEX_DIR, use_gpu=use_gpu)
        projection = TextProjection.load(path / PROJECTION_FILE)
        state = json.loads((path / FUSION_FILE).read_text())
        emb_cfg = recorded_embedder(manifest, embedder_config)
        return cls(model, projection, index, read_items(path), state["counts"],
                   float(state["kappa"]), float(state.get("text_weight", 0.0)),
                   half_life=float(state.get("half_life", 10.0)), embedder=embedder,
                   embedder_config=emb_cfg, dataset=manifest.dataset, report=state.get("report"),
                   cold=ColdPlacement.from_dict(state.get("cold")),
                   text_model=state.get("text_model"), text_options=state.get("text_options"))
