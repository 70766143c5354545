"""Create an embedder from config by registry name, wrapped in the disk cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmrank.config import EmbedderConfig, llmrank_home
from llmrank.embed.base import Embedder
from llmrank.registry import embedders


def default_cache_dir() -> Path:
    """``$LLMRANK_HOME/embeddings`` (shared by every index built on this machine)."""
    return llmrank_home() / "embeddings"


def create_embedder(config: EmbedderConfig | None = None, *, cache: bool | str | Path = True,
                    **overrides: Any) -> Embedder:
    """The configured backend (``embedders`` registry), behind a CachedEmbedder unless
    ``cache`` is False. ``cache`` may also be a directory. ``overrides`` go to the backend."""
    cfg = config or EmbedderConfig()
    kwargs: dict[str, Any] = {"model": cfg.model, "batch_size": cfg.batch_size,
                              "device": cfg.device}
    kwargs.update(overrides)
    embedder: Embedder = embedders.create(cfg.backend, **kwargs)
    if cache is False or (cache is True and not cfg.cache):
        return embedder
    from llmrank.embed.cache import CachedEmbedder

    root = default_cache_dir() if cache is True else Path(cache)
    return CachedEmbedder(embedder, root)
