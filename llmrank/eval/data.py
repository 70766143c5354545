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
from llmrank.errors import DatasetNotFoundError
from llmrank.eval.config import EvalData, data_root

log = logging.getLogger(__name__)


@dataclass
class PreparedData:
    dataset: Dataset
    split: LeaveOneOut
    path: Path
    preprocessing: dict[str, Any]  # config + resulting sizes

    def describe(self) -> str:
        p = self.preprocessing
        return (f"{p['dataset']}: min_rating={p['min_rating']}, kcore={p['kcore']} -> "
                f"{p['users']} users, {p['items']} items, {p['interactions']} interactions, "
                f"{p['eval_users']} evaluable users")


def resolve_path(cfg: EvalData) -> Path:
    direct = Path(cfg.dataset).expanduser()
    if direct.is_dir():
        return direct
    path = data_root(cfg) / cfg.dataset
    if not path.is_dir():
        raise DatasetNotFoundError(
            f"dataset {cfg.dataset!r} not found at {path}; set data.data_dir (--data-dir) or "
            f"$LLMRANK_DATA_DIR to the folder that holds it, or give a path")
    return path


def load_dataset(path: Path) -> Dataset:
    """MovieLens folders are detected by their files; other formats go through the
    ``loaders`` registry once the data layer registers them."""
    from llmrank.data.loaders.movielens import load_movielens

    return load_movielens(path)


def prepare(cfg: EvalData, dataset: Dataset | None = None) -> PreparedData:
    """Load (unless ``dataset`` is given), filter by rating, k-core, split leave-one-out."""
    path = Path(cfg.dataset) if dataset is not None else resolve_path(cfg)
    ds = dataset if dataset is not None else load_dataset(path)
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
