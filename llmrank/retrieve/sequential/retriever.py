"""The behavioural retriever (registry name ``sequential``): a trained SASRec/LRURec model's
user state queries a FAISS index of its item vectors.

Histories are dataset item ids in time order; ids the model was not trained on are skipped
(the ``fused`` retriever gives such items vectors from their text). An empty history queries
with [0, 1], which ranks items by their learned bias, a popularity prior; a model trained
without ``item_bias`` (the SASRec baseline) has none, so every item ties at 0 and such a
query gets whatever order the index leaves tied items in, not popular items."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from llmrank.config import Config, unknown_fields
from llmrank.data.dataset import Dataset
from llmrank.errors import ConfigError
from llmrank.index import IndexParams, VectorIndex, create_index, load_index
from llmrank.records import Item
from llmrank.retrieve.base import ProgressFn, no_progress
from llmrank.retrieve.catalog import read_items, write_items
from llmrank.retrieve.manifest import DatasetInfo, RetrieverManifest
from llmrank.retrieve.sequential.config import SequentialConfig
from llmrank.retrieve.sequential.model import SequentialModel
from llmrank.retrieve.sequential.search import VectorSearchMixin

log = logging.getLogger(__name__)

MODEL_DIR = "model"
INDEX_DIR = "index"


def sequential_config(config: Config | None, override: SequentialConfig | None = None,
                      **fields: Any) -> SequentialConfig:
    """The SequentialConfig from ``config.retriever.options['sequential']`` (a dict of
    SequentialConfig fields), then ``fields``, unless ``override`` is given."""
    if override is not None:
        return override
    opts: dict[str, Any] = {}
    if config is not None:
        opts.update(getattr(config.retriever, "options", {}).get("sequential", {}) or {})
        opts.setdefault("seed", config.seed)
    opts.update({k: v for k, v in fields.items() if v is not None})
    # from_dict ignores unknown keys (saved folders of other versions load); a user's
    # misspelt setting must not be dropped silently
    unknown = unknown_fields(SequentialConfig, opts)
    for n, member in enumerate(opts.get("ensemble") or []):
        if isinstance(member, dict):
            unknown += [f"ensemble[{n}].{k}" for k in unknown_fields(SequentialConfig, member)]
    if unknown:
        raise ConfigError(f"unknown sequential retriever setting(s): {', '.join(unknown)}")
    try:
        return SequentialConfig.from_dict(opts)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid sequential retriever settings: {exc}") from exc


def index_vectors(ids: Sequence[str], vectors: np.ndarray, config: Config | None) -> VectorIndex:
    """An inner-product index over ``vectors`` (structure by catalog size, GPU if faiss has one)."""
    cfg = config or Config()
    index = create_index(cfg.index.backend, dim=vectors.shape[1], kind=cfg.index.kind,
                         params=IndexParams(), use_gpu=cfg.index.use_gpu,
                         expected_size=len(ids))
    index.add(list(ids), vectors)
    return index


def dataset_info(dataset: Dataset, config: Config | None) -> DatasetInfo:
    """What the text retriever records too, the full DataConfig included: without it a
    reload drops min_rating, format, mapping and options and masks a different history."""
    return DatasetInfo.from_dataset(dataset, config)


class SequentialRetriever(VectorSearchMixin):
    """Register name and manifest kind: ``sequential``."""

    name = "sequential"
    kind = "sequential"
    source = "sequential"

    def __init__(self, model: SequentialModel, index: VectorIndex, items: Mapping[str, Item],
                 dataset: DatasetInfo | None = None) -> None:
        self.model = model
        self.index = index
        self.items = dict(items)
        self.dataset = dataset or DatasetInfo(name=str(model.meta.get("dataset", "unknown")),
                                              n_items=model.n_items)

    # ---- construction -----------------------------------------------------------------
    @classmethod
    def from_model(cls, model: SequentialModel, items: Mapping[str, Item],
                   config: Config | None = None, dataset: DatasetInfo | None = None
                   ) -> SequentialRetriever:
        return cls(model, index_vectors(model.item_ids, model.item_vectors(), config), items,
                   dataset)

    @classmethod
    def build(cls, dataset: Dataset, config: Config | None = None, *,
              progress: ProgressFn = no_progress, seq_config: SequentialConfig | None = None,
              on_epoch: Callable[[Any], None] | None = None, **kwargs: Any
              ) -> SequentialRetriever:
        """Train on every history but its last item, early-stop on the last items
        (``holdout_split``), and index the item vectors."""
        from llmrank.retrieve.sequential.ensemble import train_model
        from llmrank.retrieve.sequential.train import holdout_split

        cfg = config or Config()
        scfg = sequential_config(cfg, seq_config)
        split = holdout_split(dataset)
        epoch = {"n": 0}

        def step(done: int, total: int) -> None:
            progress(f"training epoch {epoch['n'] + 1}", done, total)

        def end(report: Any) -> None:
            epoch["n"] = report.epoch
            if on_epoch:
                on_epoch(report)

        model = train_model(split, scfg, on_step=step, on_epoch=end)
        return cls.from_model(model, dataset.items, cfg, dataset_info(dataset, cfg))

    # ---- queries ----------------------------------------------------------------------
    def history_codes(self, history: Sequence[str]) -> np.ndarray:
        """Codes of the history items this retriever knows (in the model and the index:
        an item removed from the index, or never trained on, is not fed to the model)."""
        codes = self.model.codes([i for i in history if i in self.index])
        if len(codes) < len(history):
            log.debug("skipping %d item id(s) unknown to the model", len(history) - len(codes))
        return codes

    def query_vectors(self, histories: Sequence[Sequence[str]],
                      texts: Sequence[str | None] | None = None) -> np.ndarray:
        if texts is not None and any(t and t.strip() for t in texts):
            raise ConfigError("the sequential retriever cannot query by text; "
                              "use the text or fused retriever")
        return self.model.user_vectors([self.history_codes(h) for h in histories])

    # ---- persistence ------------------------------------------------------------------
    def manifest(self) -> RetrieverManifest:
        describe = getattr(self.index, "describe", None)
        settings = {"model": self.model.config.to_dict(), "training": self.model.meta}
        return RetrieverManifest(kind=self.kind, dim=self.index.dim, n_items=len(self.index),
                                 dataset=self.dataset,
                                 index=describe() if describe else {"kind": self.index.kind},
                                 settings=settings)

    def save(self, path: Path) -> RetrieverManifest:
        path = Path(path)
        self.model.save(path / MODEL_DIR)
        self.index.save(path / INDEX_DIR)
        write_items(path, (self.items[i] for i in self.index.ids() if i in self.items))
        return self.manifest()

    @classmethod
    def load(cls, path: Path, manifest: RetrieverManifest, *, use_gpu: bool = True,
             device: str | None = None, **kwargs: Any) -> SequentialRetriever:
        path = Path(path)
        model = SequentialModel.load(path / MODEL_DIR, device=device)
        index = load_index(path / INDEX_DIR, use_gpu=use_gpu)
        return cls(model, index, read_items(path), manifest.dataset)
