"""Index folders: build, save and load any retriever by its kind.

Layout of a folder (every kind)::

    retriever.json   manifest (kind, embedder, dataset, dim, n_items, created, settings);
                     written LAST, so its presence means the folder is complete
    items.jsonl      catalog snapshot (filters and titles without the dataset)
    index/           the vector index (index.json, index.faiss, ids.npy, labels.npy, ...)
    ...              kind-specific files (a sequential model's weights, fusion weights)

A kind is a ``retrievers`` registry entry whose class implements PersistentRetriever
(``build``/``save``/``load``/``retrieve``/``retrieve_many``); ``build_retriever`` and
``load_retriever`` dispatch on it, so a new kind needs no change here or in the CLI."""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path
from typing import Any

from llmrank.config import Config, llmrank_home
from llmrank.data.dataset import Dataset
from llmrank.errors import IndexError_
from llmrank.registry import retrievers
from llmrank.retrieve.base import PersistentRetriever, ProgressFn, no_progress
from llmrank.retrieve.manifest import (
    MANIFEST_NAME,
    RetrieverManifest,
    read_manifest,
    write_manifest,
)

log = logging.getLogger(__name__)


def retriever_kinds() -> list[str]:
    """Names ``--retriever`` accepts (everything registered)."""
    return retrievers.names()


def default_index_dir(dataset_name: str, kind: str) -> Path:
    """``$LLMRANK_HOME/indexes/<dataset>/<kind>``."""
    safe = dataset_name.replace("/", "_").replace("\\", "_")
    return llmrank_home() / "indexes" / safe / kind


def build_retriever(dataset: Dataset, config: Config | None = None, *, kind: str | None = None,
                    progress: ProgressFn = no_progress, **kwargs: Any) -> PersistentRetriever:
    """Build the retriever of ``kind`` (default ``config.retriever.kind``) over ``dataset``."""
    cfg = config or Config()
    cls: Any = retrievers.get(kind or cfg.retriever.kind)
    retriever: PersistentRetriever = cls.build(dataset, cfg, progress=progress, **kwargs)
    return retriever


def save_retriever(retriever: PersistentRetriever, path: str | Path, *,
                   overwrite: bool = True) -> RetrieverManifest:
    """Write ``retriever`` as an index folder; the manifest goes last. An existing folder is
    replaced only if it is an index folder (never an arbitrary directory)."""
    out = Path(path)
    if out.exists() and any(out.iterdir()):
        if not (out / MANIFEST_NAME).is_file():
            raise IndexError_(f"{out} exists and is not an index folder; choose another --out")
        if not overwrite:
            raise IndexError_(f"{out} already holds an index")
        (out / MANIFEST_NAME).unlink()  # the folder is incomplete until the new manifest lands
    out.mkdir(parents=True, exist_ok=True)
    manifest = retriever.save(out)
    write_manifest(out, manifest)
    log.info("saved %s retriever (%d items) to %s", manifest.kind, manifest.n_items, out)
    return manifest


def load_retriever(path: str | Path, *, dataset: Dataset | None = None,
                   config: Config | None = None, **kwargs: Any) -> PersistentRetriever:
    """Load an index folder with the class its manifest's ``kind`` names. ``kwargs`` go to
    that class's ``load`` (e.g. ``embedder=``, ``use_gpu=``). With ``dataset`` (the data it
    will serve), a folder built on another dataset (a k-core or visible-data subset of the
    same one counts as the same) is refused: ids of another dataset
    (MovieLens releases share numeric ids for different films) would be silently wrong.
    With ``config``, its serving settings apply to the loaded index: ``index.use_gpu`` and
    the embedder's device, batch size and cache (the model stays the one the manifest
    records: it made the vectors)."""
    if config is not None:
        kwargs = {"use_gpu": config.index.use_gpu, "embedder_config": config.embedder, **kwargs}
    src = Path(path)
    manifest = read_manifest(src)
    if dataset is not None and _family(manifest.dataset.name) != _family(dataset.name):
        raise IndexError_(f"{src} was built on dataset {manifest.dataset.name!r}, not "
                          f"{dataset.name!r}: rebuild it for this dataset or use another index")
    cls: Any = retrievers.get(manifest.kind)
    retriever: PersistentRetriever = cls.load(src, manifest, **kwargs)
    return retriever


def _family(name: str) -> str:
    """A dataset name without the suffixes of its subsets: k-core filtering and an evaluation
    stage's visible data ("ml-latest-small-5core-visible-valid" -> "ml-latest-small") keep
    the dataset's own ids, so one index serves them all."""
    return re.sub(r"(-\d+core|-visible-[a-z]+)+$", "", name)


def remove_index_folder(path: str | Path) -> None:
    """Delete an index folder (refuses a directory without a manifest)."""
    p = Path(path)
    if not (p / MANIFEST_NAME).is_file():
        raise IndexError_(f"{p} is not an index folder")
    shutil.rmtree(p)
