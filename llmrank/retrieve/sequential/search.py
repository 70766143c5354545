"""What the behavioural and fused retrievers share: turning query vectors into filtered
candidates with one index search, and hard-negative lists for reranker fine-tuning.

A subclass supplies ``query_vectors(histories, texts)``; exclusion of seen items and business
filters go into the VectorIndex search itself (``exclude``/``keep``), so k results survive
filtering instead of being thinned out afterwards."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from llmrank.errors import UnknownItemError
from llmrank.index import VectorIndex
from llmrank.records import Candidate, Filters, Item
from llmrank.retrieve.filters import compile_filters


class VectorSearchMixin:
    """Needs ``index``, ``items`` and ``source`` attributes and ``query_vectors``."""

    index: VectorIndex
    items: dict[str, Item]
    source: str

    def query_vectors(self, histories: Sequence[Sequence[str]],
                      texts: Sequence[str | None] | None = None) -> np.ndarray:
        raise NotImplementedError

    # ---- retrieval --------------------------------------------------------------------
    def retrieve(self, *, history: list[str] | None = None, text: str | None = None,
                 k: int = 20, filters: Filters | None = None) -> list[Candidate]:
        """Top-k for one time-ordered history (and/or free text, where supported)."""
        q = self.query_vectors([history or []], [text])
        return self._search(q, [history or []], k, filters)[0]

    def retrieve_many(self, histories: Sequence[Sequence[str]], *, k: int = 20,
                      filters: Filters | None = None) -> list[list[Candidate]]:
        """One batched index search for many histories."""
        q = self.query_vectors(histories)
        return self._search(q, histories, k, filters)

    def similar_items(self, item_id: str, *, k: int = 20,
                      filters: Filters | None = None) -> list[Candidate]:
        """Items a user is likely to pick right after ``item_id`` (the model's next-item
        view of similarity), the item itself excluded (even with ``exclude_seen=False``: it
        is the query, not a seen item)."""
        if item_id not in self.index:
            raise UnknownItemError(f"item {item_id!r} is not in the index")
        q = self.query_vectors([[item_id]])
        return self._search(q, [[item_id]], k, replace(filters or Filters(), exclude_seen=True))[0]

    @property
    def build_info(self) -> dict[str, Any]:
        """Training summary shown by ``llmrank index build``."""
        model = getattr(self, "model", None)
        meta = dict(model.meta) if model is not None else {}
        info = {k: meta[k] for k in ("best_epoch", "best_valid_ndcg10", "epochs_run",
                                     "train_seconds") if k in meta}
        report = getattr(self, "report", None)
        if report:
            info.update({k: report[k] for k in ("kappa", "text_weight", "cold_items")
                         if k in report})
        return info

    def hard_negatives(self, history: Sequence[str], k: int, *, exclude: Collection[str] = (),
                       filters: Filters | None = None) -> list[str]:
        """The ``k`` highest-scoring items for ``history`` that are neither in it nor in
        ``exclude`` (pass the positive target): confusable negatives for reranker training."""
        return self.hard_negatives_many([history], k, excludes=[exclude], filters=filters)[0]

    def hard_negatives_many(self, histories: Sequence[Sequence[str]], k: int, *,
                            excludes: Sequence[Collection[str]] | None = None,
                            filters: Filters | None = None) -> list[list[str]]:
        """Batched ``hard_negatives``: history items and ``excludes[i]`` are never returned
        (whatever ``filters.exclude_seen`` says)."""
        excludes = excludes if excludes is not None else [()] * len(histories)
        if len(excludes) != len(histories):
            raise ValueError(f"{len(excludes)} exclusion sets for {len(histories)} histories")
        q = self.query_vectors(histories)
        f = filters or Filters()
        banned = [set(h) | set(e) for h, e in zip(histories, excludes, strict=True)]
        hits = self.index.search(q, k, exclude=banned, keep=compile_filters(f, self.items))
        return [[item_id for item_id, _ in row] for row in hits]

    def _search(self, queries: np.ndarray, histories: Sequence[Sequence[str]], k: int,
                filters: Filters | None) -> list[list[Candidate]]:
        f = filters or Filters()
        exclude = [set(h) for h in histories] if f.exclude_seen else None
        hits = self.index.search(queries, k, exclude=exclude, keep=compile_filters(f, self.items))
        return [[Candidate(i, float(s), self.source) for i, s in row] for row in hits]

    def score_all(self, queries: np.ndarray) -> tuple[list[str], np.ndarray]:
        """Exact scores of every indexed item (ids, (n_queries, n_items)): full-ranking
        evaluation and the exact reference for ANN recall."""
        ids = self.index.ids()
        return ids, queries @ self.index.reconstruct(ids).T
