"""Load and preprocess the dataset an eval config names, and describe what was done: the
published numbers depend on preprocessing (LlamaRec used 5-core), so the description is
printed and saved with every result."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from llmrank.data.dataset import Dataset
from llmrank.data.splits import LeaveOneOut, kcore, min_rating
from llmrank.eval.config import EvalData, data_root

log = logging.getLogger(__name__)


@dataclass
class PreparedData:
    dataset: Dataset
    split: LeaveOneOut
    path: Path | None  # None: the embedded catalog
    preprocessing: dict[str, Any]  # config + resulting sizes

    def describe(self) -> str:
        p = self.preprocessing
        return (f"{p['dataset']}: min_rating={p['min_rating']}, kcore={p['kcore']} -> "
                f"{p['users']} users, {p['items']} items, {p['interactions']} interactions, "
                f"{p['eval_users']} evaluable users")


def load_dataset(cfg: EvalData) -> tuple[Dataset, Path | None]:
    """The raw dataset through the data layer (MovieLens, Amazon, RecBole, generic tables, or
    the embedded 'catalog'), and the path it came from (None for the catalog). Filtering is
    left to ``prepare`` so that it is described with the result."""
    from llmrank.config import DataConfig
    from llmrank.data.resolve import CATALOG
    from llmrank.data.resolve import load_dataset as load_raw

    ds = load_raw(DataConfig(dataset=cfg.dataset, data_dir=str(data_root(cfg)), format=cfg.format))
    source = ds.report.source if ds.report is not None else CATALOG
    return ds, (None if source == CATALOG else Path(source))


def prepare(cfg: EvalData, dataset: Dataset | None = None) -> PreparedData:
    """Load (unless ``dataset`` is given), filter by rating, k-core, split leave-one-out."""
    path: Path | None
    if dataset is not None:
        ds, path = dataset, Path(cfg.dataset)
    else:
        ds, path = load_dataset(cfg)
    raw = ds.summary()
    if cfg.min_rating is not None:
        ds = min_rating(ds, cfg.min_rating)
        # items and users left without interactions are dropped (not rankable, not evaluable)
        ds = ds.subset(np.ones(len(ds.interactions), dtype=bool), name=ds.name)
    if cfg.kcore > 1:
        ds = kcore(ds, cfg.kcore)
    split = LeaveOneOut.from_dataset(ds)
    pre = {
        **cfg.preprocessing(), "dataset": cfg.dataset, "raw": dict(raw),
        "users": ds.n_users, "items": ds.n_items, "interactions": len(ds.interactions),
        "eval_users": len(split.eval_users()),
    }
    prepared = PreparedData(ds, split, path, pre)
    log.info("data: %s", prepared.describe())
    return prepared
