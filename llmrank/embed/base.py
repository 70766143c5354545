"""Embedder interface: text in, L2-normalised float32 vectors out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import numpy as np

# Called with the number of texts encoded so far (drives CLI progress bars).
EncodeCallback = Callable[[int], None]


@runtime_checkable
class Embedder(Protocol):
    """``model_id`` names the model exactly enough to key a cache: two embedders with the same
    ``name``/``model_id``/``dim`` must return the same vectors for the same text, unless they
    say how they differ in the optional ``fingerprint`` (the model files) or ``options`` (a
    string of the settings that change vectors, '' on the defaults) attributes."""

    name: str
    model_id: str

    @property
    def dim(self) -> int: ...

    def encode(
        self,
        texts: list[str],
        *,
        batch_size: int = 64,
        progress: bool = False,
        callback: EncodeCallback | None = None,
    ) -> np.ndarray:
        """(len(texts), dim) float32, each row of unit norm (inner product = cosine).
        ``callback(n_done)`` is called after each batch."""
        ...


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """Unit-norm float32 rows; all-zero rows stay zero (they score 0 against everything).
    Always a new array: the caller's vectors (a cache row, a model's output) stay as they were."""
    out = np.array(vectors, dtype=np.float32, order="C", copy=True)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    np.divide(out, norms, out=out, where=norms > 0)
    return out
