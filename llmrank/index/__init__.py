"""Vector indexes over item vectors. Importing this package imports no faiss; the FAISS
backend loads when an index is created or loaded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmrank.errors import IndexError_
from llmrank.index.base import MANIFEST, Hits, KeepFn, VectorIndex
from llmrank.index.select import IndexParams, choose_kind
from llmrank.registry import vector_indexes

__all__ = [
    "Hits", "IndexParams", "KeepFn", "VectorIndex", "choose_kind", "create_index", "load_index",
    "read_index_manifest",
]


def read_index_manifest(path: str | Path) -> dict[str, Any]:
    manifest = Path(path) / MANIFEST
    if not manifest.is_file():
        raise IndexError_(f"no vector index at {path} (missing {MANIFEST})")
    try:
        data: dict[str, Any] = json.loads(manifest.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise IndexError_(f"{manifest}: unreadable manifest ({exc})") from exc
    return data


def load_index(path: str | Path, **kwargs: Any) -> VectorIndex:
    """Load an index folder with the backend its manifest names (default 'faiss')."""
    backend = read_index_manifest(path).get("backend", "faiss")
    cls: Any = vector_indexes.get(backend)
    index: VectorIndex = cls.load(path, **kwargs)
    return index


def create_index(backend: str = "faiss", **kwargs: Any) -> VectorIndex:
    """An empty index of the named backend (``vector_indexes`` registry)."""
    index: VectorIndex = vector_indexes.create(backend, **kwargs)
    return index
