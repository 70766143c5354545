"""Where torch runs a model: one resolver for every backend (reranker, embedder, sequential
retriever, fine-tuning), so that ``auto`` means the same everywhere and a GPU asked for on a
machine without one is a clear ConfigError before any data or model is loaded (torch's own
"not compiled with CUDA" came as a traceback once everything was loaded)."""

from __future__ import annotations

from llmrank._optional import require
from llmrank.errors import ConfigError


def resolve_device(device: str = "auto") -> str:
    """'auto' = cuda when torch sees a GPU, else cpu; cuda, cuda:N and mps only where present."""
    torch = require("torch")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {device!r}: torch {torch.__version__} sees no CUDA GPU on this "
                              "machine; use device 'auto' (the GPU where there is one) or 'cpu'")
        index = device.partition(":")[2]
        if index and int(index) >= torch.cuda.device_count():
            raise ConfigError(f"device {device!r}: torch sees {torch.cuda.device_count()} CUDA GPU(s) "
                              f"(cuda:0 to cuda:{torch.cuda.device_count() - 1})")
    if device == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device 'mps': torch sees no Apple GPU on this machine; use 'auto' or 'cpu'")
    return device
