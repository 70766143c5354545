"""VectorIndex interface: inner-product search over item vectors, keyed by dataset ids."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

# A search hit list per query: (item_id, score), best first.
Hits = list[tuple[str, float]]


@runtime_checkable
class VectorIndex(Protocol):
    name: str

    @property
    def dim(self) -> int: ...

    def __len__(self) -> int: ...

    def ids(self) -> list[str]: ...

    def add(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        """Add (or replace) items. Vectors are float32 rows."""
        ...

    def remove(self, ids: Sequence[str]) -> int:
        """Remove items; returns how many were present."""
        ...

    def search(
        self,
        queries: np.ndarray,
        k: int,
        *,
        exclude: Sequence[set[str]] | None = None,
        keep: Callable[[str], bool] | None = None,
    ) -> list[Hits]:
        """Top-k per query row, never returning an id in that query's ``exclude`` set nor one
        for which ``keep`` is False (filters are applied inside the search, so k survive)."""
        ...

    def reconstruct(self, ids: Sequence[str]) -> np.ndarray: ...

    def save(self, path: str | Path) -> None: ...
