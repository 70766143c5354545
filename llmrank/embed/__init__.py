"""Text embedders (sentence-transformers backend, a hashing test embedder) and the disk cache
that makes re-embedding an unchanged catalog free. Importing this package imports no torch."""

from __future__ import annotations

from llmrank.embed.base import Embedder
from llmrank.embed.factory import create_embedder

__all__ = ["Embedder", "create_embedder"]
