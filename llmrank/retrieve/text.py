"""Text-embedding retriever: item vectors are embeddings of ``render_item(item)`` (the same
text the LLM reads), a user is the recency-weighted mean of their history's vectors and/or
the embedding of free text, and retrieval is one filtered inner-product search."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from llmrank.config import Config, EmbedderConfig
from llmrank.data.dataset import Dataset
from llmrank.data.itemtext import render_item
from llmrank.embed.base import Embedder
from llmrank.errors import EmptyHistoryError, IndexError_, UnknownItemError
from llmrank.index import IndexParams, VectorIndex, create_index, load_index
from llmrank.records import Candidate, Filters, Item
from llmrank.retrieve import query as qv
from llmrank.retrieve.base import ProgressFn, no_progress
from llmrank.retrieve.catalog import merge_items, read_items, write_items
from llmrank.retrieve.filters import compile_filters
from llmrank.retrieve.manifest import (
    DatasetInfo,
    EmbedderInfo,
    RetrieverManifest,
    recorded_embedder,
    recorded_model,
)

log = logging.getLogger(__name__)

INDEX_DIR = "index"


def dataset_info(dataset: Dataset, config: Config | None = None) -> DatasetInfo:
    """Kept for callers of the first version; use ``DatasetInfo.from_dataset``."""
    return DatasetInfo.from_dataset(dataset, config)


def embed_items(embedder: Embedder, items: Sequence[Item], *, batch_size: int = 64,
                progress: ProgressFn = no_progress) -> np.ndarray:
    """Embeddings of ``render_item`` for each item, in order."""
    texts = [render_item(it) for it in items]
    progress("embedding items", 0, len(texts))
    return embedder.encode(texts, batch_size=batch_size,
                           callback=lambda n: progress("embedding items", n, len(texts)))


class TextRetriever:
    """Register name and manifest kind: ``text``."""

    name = "text"
    kind = "text"
    source = "text"

    def __init__(self, index: VectorIndex, items: Mapping[str, Item], *,
                 embedder: Embedder | None = None, embedder_config: EmbedderConfig | None = None,
                 recency_half_life: float = 10.0, dataset: DatasetInfo | None = None) -> None:
        self.index = index
        self.items = dict(items)
        self._embedder = embedder
        self.embedder_config = embedder_config or EmbedderConfig()
        self.recency_half_life = float(recency_half_life)
        self.dataset = dataset or DatasetInfo(name="unknown", n_items=len(index))
        # the model (and options) that made the index's vectors; None = not known yet
        self.embedder_model_id: str | None = embedder.model_id if embedder else None
        self.embedder_options = str(getattr(embedder, "options", "")) if embedder else ""
        self.build_info: dict[str, Any] = {}  # timings and cache hits of ``build`` (for the CLI)
        qv.recency_weights(1, self.recency_half_life)  # validate early

    # ---- construction -----------------------------------------------------------------
    @classmethod
    def build(cls, dataset: Dataset, config: Config | None = None, *,
              progress: ProgressFn = no_progress, embedder: Embedder | None = None,
              **kwargs: Any) -> TextRetriever:
        """Embed every catalog item (cached on disk) and index the vectors."""
        from llmrank.embed.factory import create_embedder

        cfg = config or Config()
        emb_cfg = cfg.embedder
        if embedder is not None:  # recorded, so that a loaded index makes this one again
            emb_cfg = emb_cfg.model_copy(update={"backend": embedder.name,
                                                 "model": embedder.model_id})
        emb = embedder or create_embedder(emb_cfg)
        items = [dataset.items[i] for i in dataset.item_ids]
        t0 = time.perf_counter()
        vectors = embed_items(emb, items, batch_size=cfg.embedder.batch_size, progress=progress)
        t1 = time.perf_counter()
        index = create_index(cfg.index.backend, dim=emb.dim, kind=cfg.index.kind,
                             params=IndexParams(), use_gpu=cfg.index.use_gpu,
                             expected_size=len(items))
        progress("indexing", 0, len(items))
        index.add([it.item_id for it in items], vectors,  # type: ignore[call-arg]
                  callback=lambda n: progress("indexing", n, len(items)))
        t2 = time.perf_counter()
        log.info("text index: %d items embedded in %.1fs, indexed (%s) in %.1fs",
                 len(items), t1 - t0, index.kind, t2 - t1)
        retriever = cls(index, dataset.items, embedder=emb, embedder_config=emb_cfg,
                        recency_half_life=cfg.retriever.recency_half_life,
                        dataset=dataset_info(dataset, cfg))
        retriever.build_info = {
            "embed_seconds": round(t1 - t0, 3), "index_seconds": round(t2 - t1, 3),
            "embeddings_cached": getattr(emb, "last_hits", None),
            "embeddings_new": getattr(emb, "last_misses", len(items)),
        }
        return retriever

    @property
    def embedder(self) -> Embedder:
        """Loaded on first use: retrieval from a history needs only the stored vectors."""
        if self._embedder is None:
            from llmrank.embed.factory import create_embedder

            self._embedder = create_embedder(self.embedder_config)
        return self._embedder

    def index_embedder(self) -> Embedder:
        """``embedder``, checked to be the model that made the index's vectors: text queries
        and new items embedded by another model (even of the same dim) would score garbage."""
        emb = self.embedder
        raw: Embedder = getattr(emb, "inner", emb)
        options = str(getattr(raw, "options", ""))
        if self.embedder_model_id is None:  # built from vectors alone: the first one is it
            self.embedder_model_id, self.embedder_options = raw.model_id, options
        if (raw.model_id, options) != (self.embedder_model_id, self.embedder_options):
            raise IndexError_(
                f"the index was embedded by {self.embedder_model_id!r}"
                f"{' (' + self.embedder_options + ')' if self.embedder_options else ''}, not "
                f"{raw.model_id!r}{' (' + options + ')' if options else ''}: pass that "
                "embedder (embedder=...) or rebuild the index")
        if raw.dim != self.index.dim:
            raise IndexError_(f"embedder {raw.model_id!r} gives {raw.dim}-d vectors but the "
                              f"index holds {self.index.dim}-d ones: rebuild the index")
        return emb

    def add_items(self, items: Sequence[Item]) -> None:
        """Embed new (or changed) items from their text and add them to the live index."""
        vectors = embed_items(self.index_embedder(), items,
                              batch_size=self.embedder_config.batch_size)
        self.index.add([it.item_id for it in items], vectors)
        self.items = merge_items(self.items, items)

    def remove_items(self, item_ids: Sequence[str]) -> int:
        for i in item_ids:
            self.items.pop(i, None)
        return self.index.remove(item_ids)

    # ---- query vectors ----------------------------------------------------------------
    def known(self, history: Sequence[str]) -> list[str]:
        """The history without ids the index does not hold (logged as a warning)."""
        kept = [i for i in history if i in self.index]
        if len(kept) < len(history):
            unknown = [i for i in history if i not in self.index]
            log.warning("skipping %d unknown item id(s) in history: %s", len(unknown),
                        ", ".join(map(repr, unknown[:5])) + (" ..." if len(unknown) > 5 else ""))
        return kept

    def history_vector(self, history: Sequence[str]) -> np.ndarray | None:
        """Recency-weighted query of the known items (None when none is known)."""
        kept = self.known(history)
        useful = qv.useful_length(self.recency_half_life)
        if useful is not None:
            kept = kept[-useful:]
        if not kept:
            return None
        return qv.weighted_query(self.index.reconstruct(kept), self.recency_half_life)

    def text_vector(self, text: str) -> np.ndarray:
        """Embedding of free text; bypasses the disk cache (queries are not catalog items)."""
        emb = self.index_embedder()
        raw: Embedder = getattr(emb, "inner", emb)
        return raw.encode([text])[0]

    def query_vector(self, history: Sequence[str] | None = None,
                     text: str | None = None) -> np.ndarray:
        """The query for a history, a text, or both (equal-weight blend)."""
        h = self.history_vector(history) if history else None
        t = self.text_vector(text) if text and text.strip() else None
        if h is None and t is None:
            what = "only unknown items" if history else "no items"
            raise EmptyHistoryError(f"cannot retrieve: the history has {what} and no text was given")
        return qv.combine(h, t)

    # ---- retrieval --------------------------------------------------------------------
    def retrieve(self, *, history: list[str] | None = None, text: str | None = None,
                 k: int = 20, filters: Filters | None = None) -> list[Candidate]:
        q = self.query_vector(history, text)
        return self._search(q[None, :], [history or []], k, filters)[0]

    def retrieve_many(self, histories: Sequence[Sequence[str]], *, k: int = 20,
                      filters: Filters | None = None) -> list[list[Candidate]]:
        """One batched search; raises EmptyHistoryError if any history has no known item."""
        queries = np.stack([self.query_vector(h) for h in histories]) if histories else \
            np.zeros((0, self.index.dim), np.float32)
        return self._search(queries, histories, k, filters)

    def similar_items(self, item_id: str, *, k: int = 20,
                      filters: Filters | None = None) -> list[Candidate]:
        """Nearest items to one item (the item itself excluded)."""
        if item_id not in self.index:
            raise UnknownItemError(f"item {item_id!r} is not in the index")
        q = self.index.reconstruct([item_id])
        f = filters or Filters()
        hits = self.index.search(q, k, exclude=[{item_id}], keep=compile_filters(f, self.items))
        return [Candidate(i, s, self.source) for i, s in hits[0]]

    def _search(self, queries: np.ndarray, histories: Sequence[Sequence[str]], k: int,
                filters: Filters | None) -> list[list[Candidate]]:
        f = filters or Filters()
        exclude = [set(h) for h in histories] if f.exclude_seen else None
        hits = self.index.search(queries, k, exclude=exclude, keep=compile_filters(f, self.items))
        return [[Candidate(i, s, self.source) for i, s in row] for row in hits]

    def score_all(self, queries: np.ndarray) -> tuple[list[str], np.ndarray]:
        """Exact scores of every indexed item (ids, (n_queries, n_items)); for full-ranking
        evaluation and as the exact reference for ANN recall."""
        ids = self.index.ids()
        return ids, queries @ self.index.reconstruct(ids).T

    # ---- persistence ------------------------------------------------------------------
    def manifest(self) -> RetrieverManifest:
        info = EmbedderInfo(backend=self.embedder_config.backend,
                            model=recorded_model(self.embedder_config.model),
                            model_id=self.embedder_model_id or self.embedder_config.model,
                            dim=self.index.dim, options=self.embedder_options)
        describe = getattr(self.index, "describe", None)
        return RetrieverManifest(kind=self.kind, dim=self.index.dim, n_items=len(self.index),
                                 dataset=self.dataset, embedder=info,
                                 index=describe() if describe else {"kind": self.index.kind},
                                 settings={"recency_half_life": self.recency_half_life})

    def save(self, path: Path) -> RetrieverManifest:
        self.index.save(path / INDEX_DIR)
        write_items(path, (self.items[i] for i in self.index.ids() if i in self.items))
        return self.manifest()

    @classmethod
    def load(cls, path: Path, manifest: RetrieverManifest, *, embedder: Embedder | None = None,
             use_gpu: bool = True, embedder_config: EmbedderConfig | None = None,
             **kwargs: Any) -> TextRetriever:
        index = load_index(path / INDEX_DIR, use_gpu=use_gpu)
        emb_cfg = recorded_embedder(manifest, embedder_config)
        half_life = float(manifest.settings.get("recency_half_life", 10.0))
        if "recency_half_life" in kwargs and kwargs["recency_half_life"] is not None:
            half_life = float(kwargs["recency_half_life"])
        retriever = cls(index, read_items(path), embedder=embedder, embedder_config=emb_cfg,
                        recency_half_life=half_life, dataset=manifest.dataset)
        if manifest.embedder is not None:  # what made the vectors, whatever is passed now
            retriever.embedder_model_id = manifest.embedder.model_id
            retriever.embedder_options = manifest.embedder.options
        return retriever
