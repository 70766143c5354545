"""Load and preprocess the dataset an eval config names, and describe what was done: the
published numbers depend on preprocessing (LlamaRec used 5-core), so the description is
printed and saved with every result."""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from llmrank.data.dataset import Dataset
from llmrank.data.splits import LeaveOneOut, kcore, min_rating
from llmrank.errors import ConfigError
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

    def digest(self) -> str:
        """A hash of what the split evaluates (``split_digest``), for the resume fingerprint:
        the config names a dataset, but a Python caller's in-memory dataset, or a file
        replaced on disk, can differ under the same name, and resuming would mix two
        datasets' per-user results."""
        return split_digest(self.split)


def split_digest(split: LeaveOneOut) -> str:
    """A hash of a split's user and item ids, every training history and the targets (item
    text is not in it)."""
    import hashlib

    h = hashlib.sha256()
    ds = split.dataset
    for ids in (ds.user_ids, ds.item_ids):
        h.update("\x1f".join(ids).encode("utf-8", "surrogatepass"))
        h.update(b"\x1e")
    lengths = np.fromiter((len(t) for t in split.train), dtype=np.int64, count=len(split.train))
    h.update(lengths.tobytes())
    for t in split.train:
        h.update(np.ascontiguousarray(t, dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(split.valid_target, dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(split.test_target, dtype=np.int64).tobytes())
    return h.hexdigest()[:16]


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
    """Load (unless ``dataset`` is given), filter by rating, k-core, split leave-one-out. A
    dataset that ships its own split (RecBole benchmark files) is evaluated on exactly that
    split (``LeaveOneOut.from_predefined``): published numbers were computed on its rows."""
    path: Path | None
    if dataset is not None:
        ds, path = dataset, Path(cfg.dataset)
    else:
        ds, path = load_dataset(cfg)
    raw = ds.summary()
    pre = {**cfg.preprocessing(), "dataset": cfg.dataset, "raw": dict(raw)}
    if ds.split is not None:
        _check_unfiltered(ds, cfg)
        split = LeaveOneOut.from_predefined(ds)
        pre["split"] = ("shipped with the data: its valid and test rows (each evaluated user's "
                        "last two items); test history includes the validation item")
    else:
        ds = _filtered(ds, cfg)
        split = LeaveOneOut.from_dataset(ds)
    pre.update({"users": ds.n_users, "items": ds.n_items, "interactions": len(ds.interactions),
                "eval_users": len(split.eval_users())})
    prepared = PreparedData(ds, split, path, pre)
    log.info("data: %s", prepared.describe())
    return prepared


def _filtered(ds: Dataset, cfg: EvalData) -> Dataset:
    """The rating filter, then k-core, as configured."""
    if cfg.min_rating is not None:
        ds = min_rating(ds, cfg.min_rating)
        # items and users left without interactions are dropped (not rankable, not evaluable)
        ds = ds.subset(np.ones(len(ds.interactions), dtype=bool), name=ds.name)
    if cfg.kcore > 1:
        ds = kcore(ds, cfg.kcore)
    return ds


def _check_unfiltered(ds: Dataset, cfg: EvalData) -> None:
    """A shipped split's rows are positions in the unfiltered histories: a filter that would
    remove anything cannot be applied to it (one that removes nothing is harmless)."""
    if cfg.min_rating is None and cfg.kcore <= 1:
        return
    bare = copy.copy(ds)
    bare.split = None  # filter a view without the split (no 'split dropped' warning)
    kept = len(_filtered(bare, cfg).interactions)
    if kept != len(ds.interactions):
        raise ConfigError(
            f"dataset {ds.name!r} ships its own split; min_rating={cfg.min_rating} / "
            f"kcore={cfg.kcore} would remove {len(ds.interactions) - kept} of its "
            f"{len(ds.interactions)} interactions and move its rows: set kcore = 0 and "
            "min_rating = null to evaluate the shipped split")
