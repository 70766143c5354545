"""Negatives for training prompts: uniformly random items, and hard negatives that a retriever
proposes for the same history prefix.

Random negatives teach popularity and genre fit (the 20-candidate protocol); hard negatives
teach the fine distinctions the reranker faces among a retriever's top-20. The retriever is
built on the data visible at the validation stage (every interaction except each evaluated
user's validation and test items), so it cannot leak a held-out target into training."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from llmrank.data.candidates import sample_negatives
from llmrank.data.splits import LeaveOneOut

log = logging.getLogger(__name__)


@runtime_checkable
class HardNegativeSource(Protocol):
    """Top items (dataset ids, best first, history excluded) for each history prefix."""

    def top_items(self, histories: Sequence[Sequence[str]], k: int) -> list[list[str]]: ...


class RetrieverNegatives:
    """A HardNegativeSource over any llmrank Retriever with ``retrieve_many`` (text,
    sequential, fused), queried in batches."""

    def __init__(self, retriever: Any, batch_size: int = 256) -> None:
        self.retriever = retriever
        self.batch_size = batch_size

    def top_items(self, histories: Sequence[Sequence[str]], k: int) -> list[list[str]]:
        out: list[list[str]] = []
        for start in range(0, len(histories), self.batch_size):
            batch = [list(h) for h in histories[start: start + self.batch_size]]
            hits = self.retriever.retrieve_many(batch, k=k)
            out.extend([c.item_id for c in row] for row in hits)
        return out


def top_codes(source: HardNegativeSource, split: LeaveOneOut,
              histories: Sequence[Sequence[int] | np.ndarray], k: int) -> list[list[int]]:
    """``source``'s top ``k`` for each history, in item codes (the source speaks dataset
    ids; ids the dataset does not know are dropped)."""
    ds = split.dataset
    tops = source.top_items([[ds.item_ids[c] for c in h] for h in histories], k)
    return [[ds.item_code(i) for i in row if ds.has_item(i)] for row in tops]


def build_retriever_negatives(kind: str, split: LeaveOneOut,
                              options: dict[str, Any] | None = None) -> RetrieverNegatives:
    """Build retriever ``kind`` (a ``retrievers`` registry name) on the validation-stage
    visible data: no evaluated user's validation or test item is in what it learns from."""
    from llmrank.baselines.retriever import visible_dataset
    from llmrank.config import load_config
    from llmrank.registry import retrievers

    cls: Any = retrievers.get(kind)
    visible = visible_dataset(split, "valid")
    log.info("building %s retriever for hard negatives on %d interactions", kind,
             len(visible.interactions))
    return RetrieverNegatives(cls.build(visible, load_config(options or {})))


def load_retriever_negatives(path: str) -> RetrieverNegatives:
    """A retriever saved with ``llmrank.retrieve.store.save_retriever``. The caller vouches
    that it was built on validation-stage visible data (as ``build_retriever_negatives``)."""
    from llmrank.retrieve.store import load_retriever

    return RetrieverNegatives(load_retriever(path))


def mix_negatives(n_items: int, exclude: np.ndarray, n_total: int, hard_pool: Sequence[int],
                  n_hard: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n_total`` distinct negatives: up to ``n_hard`` drawn uniformly from ``hard_pool``
    (minus ``exclude``), the rest uniformly from the catalog minus ``exclude`` and the hard
    ones. Returns (negatives, is_hard)."""
    excluded = set(np.asarray(exclude, dtype=np.int64).tolist())
    pool = [int(c) for c in dict.fromkeys(hard_pool) if int(c) not in excluded]
    take = min(n_hard, len(pool), n_total)
    hard = rng.choice(np.asarray(pool, dtype=np.int64), size=take, replace=False) if take else \
        np.zeros(0, np.int64)
    rest = sample_negatives(n_items, np.concatenate([np.asarray(exclude, np.int64), hard]),
                            n_total - take, rng)
    negs = np.concatenate([hard, rest]).astype(np.int64)
    flags = np.concatenate([np.ones(take, bool), np.zeros(len(rest), bool)])
    return negs, flags

