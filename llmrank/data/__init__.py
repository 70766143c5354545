"""The data layer: one canonical Dataset, loaders for MovieLens, Amazon, RecBole and generic
tables, the embedded demo catalog, splits, candidate lists and item text.

Entry points: ``load_dataset(DataConfig)`` (resolve a name or path, load, preprocess),
``save_dataset``/``load_saved`` (the canonical Parquet folder), ``download`` (GroupLens)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmrank.data.dataset import Dataset, Interactions
from llmrank.data.lines import LoadReport

__all__ = [
    "Dataset", "Interactions", "LoadReport", "data_dir", "detect_format", "download",
    "load_catalog", "load_dataset", "load_saved", "save_dataset",
]

if TYPE_CHECKING:
    from llmrank.data.demo_catalog import load_catalog
    from llmrank.data.download import download
    from llmrank.data.resolve import data_dir, detect_format, load_dataset
    from llmrank.data.store import load_saved, save_dataset

_LAZY = {
    "load_dataset": "llmrank.data.resolve", "data_dir": "llmrank.data.resolve",
    "detect_format": "llmrank.data.resolve", "download": "llmrank.data.download",
    "save_dataset": "llmrank.data.store", "load_saved": "llmrank.data.store",
    "load_catalog": "llmrank.data.demo_catalog",
}


def __getattr__(name: str) -> Any:
    """Import the heavier entry points (config/pydantic, pyarrow) on first use only."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'llmrank.data' has no attribute {name!r}")
