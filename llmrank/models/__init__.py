"""Offline model resolution and GGUF import (``llmrank models``)."""

from llmrank.models.gguf_import import import_gguf
from llmrank.models.resolve import (
    DEFAULT_MODEL,
    ModelInfo,
    adapters_dir,
    default_gguf,
    import_gguf_cached,
    list_models,
    models_dir,
    resolve_adapter,
    resolve_model,
)

__all__ = [
    "DEFAULT_MODEL",
    "ModelInfo",
    "adapters_dir",
    "default_gguf",
    "import_gguf",
    "import_gguf_cached",
    "list_models",
    "models_dir",
    "resolve_adapter",
    "resolve_model",
]
