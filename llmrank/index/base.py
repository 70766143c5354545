"""VectorIndex interface: inner-product search over item vectors, keyed by dataset ids.

An index saves to a folder holding at least ``index.json`` (a manifest whose ``backend`` names
the ``vector_indexes`` registry entry that can load it); see ``llmrank.index.load_index``."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

# A search hit list per query: (item_id, score), best first.
Hits = list[tuple[str, float]]
# Keep-predicate over item ids, applied inside the search (business filters).
KeepFn = Callable[[str], bool]

MANIFEST = "index.json"


@runtime_checkable
class VectorIndex(Protocol):
    name: str

    @property
    def dim(self) -> int: ...

    @property
    def kind(self) -> str:
        """The structure actually used ('flat', 'hnsw', 'ivf')."""
        ...

    def __len__(self) -> int: ...

    def __contains__(self, item_id: object) -> bool: ...

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
        exclude: Sequence[Collection[str]] | None = None,
        keep: KeepFn | None = None,
    ) -> list[Hits]:
        """Top-k per query row, never returning an id in that query's ``exclude`` set nor one
        for which ``keep`` is False (filters are applied inside the search, so k survive
        whenever k items pass them)."""
        ...

    def reconstruct(self, ids: Sequence[str]) -> np.ndarray:
        """Stored vectors of ``ids`` (raises UnknownItemError for an id not in the index)."""
        ...

    def save(self, path: str | Path) -> None:
        """Write the index folder (``index.json`` manifest plus backend files)."""
        ...
