"""Retrieval: the text-embedding retriever, the behavioural (``sequential/``: SASRec, LRURec)
and fused retrievers, index folders (build/save/load by kind), filters and recency-weighted
query vectors. Importing this package imports no faiss or torch."""

from __future__ import annotations

from llmrank.retrieve.base import PersistentRetriever, ProgressFn, Retriever
from llmrank.retrieve.manifest import DatasetInfo, EmbedderInfo, RetrieverManifest, read_manifest
from llmrank.retrieve.store import (
    build_retriever,
    default_index_dir,
    load_retriever,
    retriever_kinds,
    save_retriever,
)

__all__ = [
    "DatasetInfo", "EmbedderInfo", "PersistentRetriever", "ProgressFn", "Retriever",
    "RetrieverManifest", "build_retriever", "default_index_dir", "load_retriever",
    "read_manifest", "retriever_kinds", "save_retriever",
]
