"""Adapter: any llmrank Retriever (text, sequential, fused ...) evaluated as a Ranker.

The retriever is built on what is visible at the stage (``visible_dataset``: every
interaction except the held-out targets, same item and user codes), so a retriever that
learns from interactions cannot see the answer. Full ranking asks for the top ``k``
(items outside get -inf: exact for metrics at K <= k); candidate protocols restrict the
retrieval to the candidates with ``Filters(allow=...)`` so the retriever's own scores order
them."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from llmrank.data.dataset import Dataset
from llmrank.data.splits import LeaveOneOut
from llmrank.errors import LlmrankError
from llmrank.eval.base import OutputStatus, check_stage
from llmrank.records import Candidate, Filters

log = logging.getLogger(__name__)


def visible_dataset(split: LeaveOneOut, stage: str) -> Dataset:
    """The split's dataset without the interactions held out for ``stage`` (and later
    ones): for 'test' drop each evaluated user's last event, for 'valid' the last two."""
    check_stage(stage)
    ds = split.dataset
    inter = ds.interactions
    order = np.lexsort((inter.order, inter.timestamp, inter.user))
    bounds = np.searchsorted(inter.user[order], np.arange(ds.n_users + 1))
    drop = 1 if stage == "test" else 2
    keep = np.ones(len(inter), dtype=bool)
    for u in split.eval_users():
        keep[order[bounds[u + 1] - drop: bounds[u + 1]]] = False
    return ds.subset(keep, name=f"{ds.name}-visible-{stage}", drop_unused=False)


class RetrieverRanker:
    """Wrap a Retriever as a Ranker.

    ``kind`` names a ``retrievers`` registry entry whose class has ``build(dataset, config)``
    (built in ``fit`` on the visible data, again whenever the split or stage changes, so a
    model never serves a stage whose targets it trained on); or pass a ``factory(dataset) ->
    Retriever`` (called the same way); or a ready ``retriever`` (used as is for every stage:
    you vouch that it saw no targets). ``config`` is an llmrank Config dict (embedder, index,
    retriever sections); ``seed`` fills its ``seed`` unless the config sets one (``llmrank
    eval --seed`` arrives here).

    Retrieval never drops the user's history itself (``exclude_seen=False``, ``k`` plus the
    history's length): the harness masks seen items but keeps a re-consumed target."""

    def __init__(self, kind: str = "text", *, k: int = 100, retriever: Any = None,
                 factory: Callable[[Dataset], Any] | None = None,
                 config: dict[str, Any] | None = None, name: str | None = None,
                 batch_size: int = 256, seed: int | None = None) -> None:
        self.kind = kind
        self.k = k
        self.retriever = retriever
        self.factory = factory
        self.config = dict(config or {})
        if seed is not None:
            self.config.setdefault("seed", seed)
        self.seed = self.config.get("seed", seed)
        self.name = name or f"{kind}-retriever"
        self.batch_size = batch_size
        self._given = retriever is not None  # handed in: never rebuilt
        self._built_for: tuple[LeaveOneOut, str] | None = None
        self._split: LeaveOneOut | None = None
        self._stage: str | None = None

    def fit(self, split: LeaveOneOut, stage: str) -> None:
        """(Re)build on what ``stage`` leaves visible, unless built for this split and stage
        already or handed in."""
        self._split, self._stage = split, check_stage(stage)
        if self._given:
            return
        built = self._built_for
        if self.retriever is not None and built is not None and built[0] is split and built[1] == stage:
            return
        self.retriever = None  # a failed build must not leave the other stage's model behind
        self._built_for = None
        visible = visible_dataset(split, stage)
        if self.factory is not None:
            self.retriever = self.factory(visible)
        else:
            from llmrank.config import load_config
            from llmrank.registry import retrievers

            cls: Any = retrievers.get(self.kind)
            self.retriever = cls.build(visible, load_config(self.config))
        self._built_for = (split, stage)

    def _check(self, stage: str) -> LeaveOneOut:
        """The fitted split; scoring another stage than the fitted one is an error (its
        retriever may have trained on that stage's targets)."""
        if self._split is None or self.retriever is None:
            raise RuntimeError(f"{self.name}: call fit() before score()")
        if stage != self._stage:
            raise ValueError(f"{self.name} was fitted for stage {self._stage!r}, asked for {stage!r}")
        return self._split

    def score(self, users: np.ndarray, candidates: np.ndarray | None, stage: str) -> np.ndarray:
        return self.score_with_status(users, candidates, stage)[0]

    def score_with_status(self, users: np.ndarray, candidates: np.ndarray | None,
                          stage: str) -> tuple[np.ndarray, OutputStatus]:
        split = self._check(stage)
        ds = split.dataset
        ids = ds.item_ids
        histories = [[ids[c] for c in split.history(int(u), stage)] for u in users]
        status = OutputStatus.ok(len(users))
        if candidates is None:
            out = np.full((len(users), ds.n_items), -np.inf)
            hits = self._retrieve_full(histories, status)
            for i, row in enumerate(hits):
                for c in _top_unseen(row, set(histories[i]), self.k):
                    out[i, ds.item_code(c.item_id)] = c.score
            return out, status
        cands = np.asarray(candidates, dtype=np.int64)
        out = np.full(cands.shape, np.nan)
        for i, hist in enumerate(histories):
            allow = frozenset(ids[c] for c in cands[i])
            try:
                row = self.retriever.retrieve(history=hist, k=len(allow),
                                              filters=Filters(allow=allow, exclude_seen=False))
            except LlmrankError as exc:
                log.warning("%s: user %s: %s", self.name, users[i], exc)
                status.invalid[i] = True
                continue
            got = {c.item_id: c.score for c in row}
            out[i] = [got.get(ids[c], np.nan) for c in cands[i]]
        return out, status

    def _retrieve_full(self, histories: list[list[str]],
                       status: OutputStatus) -> list[list[Candidate]]:
        """Top ``k`` + history length per user, seen items included (see the class doc)."""
        keep_seen = Filters(exclude_seen=False)
        many = getattr(self.retriever, "retrieve_many", None)
        if many is not None:
            out: list[list[Candidate]] = []
            try:
                for s in range(0, len(histories), self.batch_size):
                    batch = histories[s: s + self.batch_size]
                    k = self.k + max((len(set(h)) for h in batch), default=0)
                    out.extend(many(batch, k=k, filters=keep_seen))
                return out
            except LlmrankError as exc:  # one bad history fails the batch: go one by one
                log.warning("%s: batched retrieval failed (%s); retrying per user", self.name, exc)
        rows: list[list[Candidate]] = []
        for i, hist in enumerate(histories):
            try:
                rows.append(self.retriever.retrieve(history=hist, k=self.k + len(set(hist)),
                                                    filters=keep_seen))
            except LlmrankError as exc:
                log.warning("%s: %s", self.name, exc)
                status.invalid[i] = True
                rows.append([])
        return rows


def _top_unseen(row: list[Candidate], seen: set[str], k: int) -> list[Candidate]:
    """The history items of ``row`` (the harness masks them, except a re-consumed target)
    and its first ``k`` others: exactly the top ``k`` a seen-excluding search returns."""
    out: list[Candidate] = []
    unseen = 0
    for c in row:
        if c.item_id in seen:
            out.append(c)
        elif unseen < k:
            out.append(c)
            unseen += 1
    return out
