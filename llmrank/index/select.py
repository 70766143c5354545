"""Which index structure a catalog size gets, and the structure's parameters.

Thresholds come from eval/bench_retrieval_scale.py (eval/RESULTS.md section 2), measured on a
shared 2-core CPU: exact search stays cheap and needs no build while the catalog is small;
HNSW gives fast, high-recall queries but its build time grows fastest; IVF builds in a
fraction of HNSW's time at a million items and keeps recall high with a tuned nprobe."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

KINDS = ("flat", "hnsw", "ivf")

# Catalog sizes at which the automatic choice switches structure (see module docstring).
FLAT_MAX = 50_000
HNSW_MAX = 300_000


@dataclass(frozen=True)
class IndexParams:
    """Structure parameters. ``nlist``/``nprobe`` of None are derived from the size."""

    hnsw_m: int = 32
    ef_construction: int = 64
    ef_search: int = 96
    nlist: int | None = None
    nprobe: int | None = None
    train_points_per_list: int = 50
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> IndexParams:
        known = {k: v for k, v in (data or {}).items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def with_ivf_sizes(self, n: int) -> IndexParams:
        """Fill ``nlist`` (about sqrt(n): k-means training and assignment stay affordable on
        a small CPU) and ``nprobe`` (about 1/32 of the lists, at least 8)."""
        nlist = self.nlist or max(1, min(16_384, round(math.sqrt(max(n, 1)))))
        nprobe = self.nprobe or max(8, nlist // 32)
        return replace(self, nlist=nlist, nprobe=min(nprobe, nlist))


def choose_kind(n_items: int, kind: str = "auto") -> str:
    """'flat' up to FLAT_MAX items, 'hnsw' up to HNSW_MAX, 'ivf' beyond; a forced kind wins."""
    if kind != "auto":
        if kind not in KINDS:
            raise ValueError(f"index kind must be auto or one of {', '.join(KINDS)}, got {kind!r}")
        return kind
    if n_items <= FLAT_MAX:
        return "flat"
    if n_items <= HNSW_MAX:
        return "hnsw"
    return "ivf"
