"""Which index structure a catalog size gets, and the structure's parameters.

Thresholds come from eval/bench_retrieval_scale.py (eval/RESULTS.md section 2; 384-d, one
FAISS thread on a shared 2-core CPU):
- flat up to 20k items: exact, no build, a single query costs ~2 ms at 10k but grows
  linearly (~60 ms at 100k, ~490 ms at 1M).
- HNSW up to 100k: recall@10 ~0.99 at ~1-2 ms per query, but its build is the slowest and
  grows fastest (8 s at 10k, 280 s at 100k here; an estimated hour at 1M).
- IVF beyond: builds in ~80 s at 1M and is 7x faster than flat there, at recall@10 0.90 on
  the harder synthetic data (1.0 on the easier one) with nprobe = nlist/8."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

KINDS = ("flat", "hnsw", "ivf")

# Catalog sizes at which the automatic choice switches structure (see module docstring).
FLAT_MAX = 20_000
HNSW_MAX = 100_000


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
        a small CPU) and ``nprobe`` (1/8 of the lists, at least 16: smaller fractions lost
        too much recall on the benchmark's harder data, 0.78 at 1/16 and 0.63 at 1/32)."""
        nlist = self.nlist or max(1, min(16_384, round(math.sqrt(max(n, 1)))))
        nprobe = self.nprobe or max(16, nlist // 8)
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
