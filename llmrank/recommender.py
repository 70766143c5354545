"""The one public entry point: retrieve -> rerank -> explore -> explain.

    rec = Recommender.from_config("deploy.toml")
    resp = rec.recommend("42", k=10, explain=True)      # or a RecRequest

Every stage is an object with one call; the Recommender only wires them and records the
trace. The explore stage is a seam: any callable ``(request, ranked, history) -> shown``
(``llmrank.explore.step.ExploreStep`` is the built-in) runs between rerank and explain;
without one the top k are shown greedily with propensity 1. Whatever a stage returns, the
response holds only items that were retrieved as candidates, or catalog items that pass the
request's filters (and, with ``exclude_seen``, are not in the history): a policy's must-show
items are shown even when retrieval did not return them, unless the request rules them out.
The built-in step applies that same rule before it logs, so the logged slate is the response."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from llmrank.config import Config, load_config
from llmrank.errors import EmptyHistoryError, FeedbackError, UnknownUserError
from llmrank.records import Candidate, Item, RankedItem, RecRequest, RecResponse, Trace

if TYPE_CHECKING:
    from llmrank.data.dataset import Dataset
    from llmrank.explain.explainer import Explainer, Explanation
    from llmrank.rerank.reranker import LLMReranker
    from llmrank.retrieve.base import Retriever

log = logging.getLogger(__name__)


class ExploreSeam(Protocol):
    """What the Recommender calls between rerank and explain (ExploreStep fits)."""

    def __call__(self, request: RecRequest, ranked: Sequence[RankedItem],
                 history: Sequence[str] = ()) -> list[RankedItem]: ...


class Recommender:
    def __init__(self, dataset: Dataset, retriever: Retriever | None,
                 reranker: LLMReranker | None = None, explainer: Explainer | None = None,
                 explore: ExploreSeam | None = None, *, config: Config | None = None) -> None:
        self.dataset = dataset
        self.retriever = retriever
        self.reranker = reranker
        self.explainer = explainer
        self.explore = explore
        self.config = config or Config()

    # ---- construction ------------------------------------------------------------------
    @classmethod
    def from_config(cls, source: str | Path | dict[str, Any] | Config | None = None,
                    overrides: dict[str, Any] | None = None, *, dataset: Dataset | None = None,
                    retriever: Retriever | None = None, llm: Any = None,
                    explore: ExploreSeam | None = None, progress: bool = False) -> Recommender:
        """Build every stage a config describes. Passing ``dataset``/``retriever``/``llm``/
        ``explore`` reuses existing objects instead (tests, servers sharing a model)."""
        cfg = load_config(source, overrides)
        if dataset is None:
            from llmrank.data.resolve import load_dataset

            dataset = load_dataset(cfg.data)
        if retriever is None:
            retriever = _build_retriever(dataset, cfg)
        reranker = None
        if cfg.reranker.enabled:
            from llmrank.rerank.reranker import LLMReranker

            reranker = LLMReranker.from_config(cfg.reranker, seed=cfg.seed, llm=llm)
        from llmrank.explain.explainer import Explainer

        writer = (reranker.llm if reranker else llm) if cfg.explain.source == "model" else None
        explainer = Explainer(writer, cfg.explain.template,
                              max_new_tokens=cfg.explain.max_new_tokens,
                              vocabulary=dataset.genre_vocabulary(), adapter=cfg.explain.adapter)
        if explore is None and (cfg.policy.name != "greedy" or cfg.feedback.path
                                or cfg.policy.prior != "rerank"):
            from llmrank.explore.features import features_for
            from llmrank.explore.step import ExploreStep

            explore = ExploreStep.from_config(cfg, features=features_for(dataset, retriever),
                                              users=dataset.users,
                                              prior_scores=_familiarity(dataset, cfg, reranker, llm))
        return cls(dataset, retriever, reranker, explainer, explore, config=cfg)

    def describe_reranker(self) -> str:
        return self.reranker.describe() if self.reranker else "off"

    # ---- requests ----------------------------------------------------------------------
    def _request(self, request: RecRequest | str | None, **fields: Any) -> RecRequest:
        """The request to serve, settled: its candidate count (its own, else the config's
        ``retriever.n_candidates``, never below k, so k is never cut) and whether the policy
        explores (its own choice, else whenever the config names a policy other than greedy).
        A malformed request is an InvalidRequestError (``RecRequest.validate``)."""
        given = {k: v for k, v in fields.items() if v is not None}
        if isinstance(request, RecRequest):
            req = replace(request, **given) if given else request
        else:
            req = RecRequest(user_id=request, **given)
        req.validate()
        n = req.n_candidates if req.n_candidates is not None else self.config.retriever.n_candidates
        explore = req.explore if req.explore is not None else self.config.policy.name != "greedy"
        if n == req.n_candidates and n >= req.k and explore is req.explore:
            return req
        return replace(req, n_candidates=max(n, req.k), explore=explore)

    @staticmethod
    def _n_candidates(req: RecRequest) -> int:
        """How many candidates a request retrieves, as ``_request`` settled it."""
        assert req.n_candidates is not None, "requests are settled by _request first"
        return req.n_candidates

    def _history(self, req: RecRequest) -> list[str]:
        """Explicit history wins; a known user's history otherwise; items not in the catalog
        are dropped (they cannot be shown or described)."""
        if req.history is not None:
            hist = list(req.history)
        elif req.user_id is not None and self.dataset.has_user(req.user_id):
            hist = self.dataset.history(req.user_id)
        elif req.user_id is not None and not req.text:
            raise UnknownUserError(f"unknown user {req.user_id!r} in dataset {self.dataset.name!r} "
                                   "and no history or text given")
        else:
            hist = []
        return [i for i in hist if i in self.dataset.items]

    def _liked(self, req: RecRequest, hist: list[str]) -> list[str]:
        """The history items an explanation may say the user liked: for a known user whose
        history comes from the dataset, those rated at least ``explain.liked_min_rating`` (a
        film rated 1 of 5 is history, not taste) and those without a rating; an explicit
        history carries no ratings, so all of it."""
        threshold = self.config.explain.liked_min_rating
        if (threshold is None or req.history is not None or req.user_id is None
                or not self.dataset.has_user(req.user_id)):
            return hist
        ratings = self.dataset.user_ratings(req.user_id)
        return [i for i in hist if ratings.get(i, threshold) >= threshold]

    def _items(self, ids: Sequence[str]) -> list[Item]:
        return [self.dataset.items[i] for i in ids if i in self.dataset.items]

    def recommend(self, request: RecRequest | str | None = None, *, k: int | None = None,
                  explain: bool | None = None, text: str | None = None,
                  history: list[str] | None = None, explore: bool | None = None) -> RecResponse:
        """Top-k items for a user id, a history or free text (or a full RecRequest)."""
        req = self._request(request, k=k, explain=explain, text=text, history=history, explore=explore)
        trace = Trace()
        hist = self._history(req)
        t0 = time.perf_counter()
        cands = self._retrieve(req, hist, trace)
        trace.stage_seconds["retrieve"] = time.perf_counter() - t0
        return self._finish(req, hist, cands, trace)

    def rerank(self, request: RecRequest | str | None, candidates: Sequence[str | Candidate], *,
               k: int | None = None, explain: bool | None = None) -> RecResponse:
        """Rerank given candidates (no retrieval): the batch-job entry point. The request's
        business filters apply to them; ``exclude_seen`` does not (the caller chose them)."""
        req = self._request(request, k=k, explain=explain)
        hist = self._history(req)
        cands = [c if isinstance(c, Candidate) else Candidate(c, 0.0, "given") for c in candidates]
        admit = self._admissible(req, [])  # the caller chose them: seen items stay
        return self._finish(req, hist, _first_of_each([c for c in cands if admit(c.item_id)]), Trace())

    def explain(self, request: RecRequest | str | None, item_ids: Sequence[str], *,
                history: list[str] | None = None) -> list[Explanation]:
        """Explanations for ``item_ids`` (validated model text or the factual fallback)."""
        from llmrank.explain.explainer import Explainer

        req = self._request(request, history=history)
        liked = self._items(self._liked(req, self._history(req)))
        explainer = self.explainer or Explainer(None)
        out, _ = explainer.explain(liked, self._items(item_ids), query=req.text)
        return out

    def feedback(self, event: Any) -> str:
        """Store a feedback event through the explore stage's store (acknowledged when durable)."""
        handler = getattr(self.explore, "feedback", None)
        if handler is None:
            raise FeedbackError("no feedback store configured ([feedback] path or a policy)")
        return str(handler(event))

    def learn(self, *, now: float | None = None) -> int:
        """Fold settled feedback into the exploration policy now (the explore stage also does
        it by itself every ``learn_every_seconds``); returns how many impressions it used."""
        handler = getattr(self.explore, "learn", None)
        return int(handler(now=now)) if handler is not None else 0

    # ---- stages ------------------------------------------------------------------------
    def _retrieve(self, req: RecRequest, hist: list[str], trace: Trace) -> list[Candidate]:
        if not hist and not req.text:
            trace.notes.append("no history and no text: popular items as candidates")
            return self._popular(req)
        if self.retriever is None:
            raise EmptyHistoryError("no retriever configured; use rerank() with candidates")
        found = self.retriever.retrieve(history=hist or None, text=req.text,
                                        k=self._n_candidates(req), filters=req.filters)
        admit = self._admissible(req, hist)  # never trust a stage: the request's rules hold
        return _first_of_each([c for c in found if admit(c.item_id)])

    def _popular(self, req: RecRequest) -> list[Candidate]:
        """Most-popular items that pass the request's filters (allow, deny, attributes)."""
        import numpy as np

        from llmrank.retrieve.filters import compile_filters

        keep = compile_filters(req.filters, self.dataset.items)  # the retriever's own rules
        pop = self.dataset.item_popularity()
        order = np.argsort(-pop, kind="stable")
        out = []
        for code in order:
            item_id = self.dataset.item_ids[int(code)]
            if keep is not None and not keep(item_id):
                continue
            out.append(Candidate(item_id, float(pop[code]), "popular"))
            if len(out) == self._n_candidates(req):
                break
        return out

    def _finish(self, req: RecRequest, hist: list[str], cands: list[Candidate],
                trace: Trace) -> RecResponse:
        hist_items = self._items(hist)
        cand_items = self._items([c.item_id for c in cands])
        t0 = time.perf_counter()
        if self.reranker is not None and len(cand_items) > 1:
            from llmrank.rerank.reranker import RerankRequest

            res = self.reranker.rerank(RerankRequest(
                hist_items, cand_items, [c.score for c in cands], req.text,
                key=req.user_id or _anonymous_key(hist, req.text)))
            ranked = res.items
            if res.call:
                trace.llm_calls.append(res.call)
            trace.stage_seconds["rerank"] = time.perf_counter() - t0
        else:  # nothing reranked: the trace says so and claims no rerank stage
            trace.notes.append("reranker off: candidates in retrieval-score order" if self.reranker is None
                               else f"{len(cand_items)} candidate(s): nothing to rerank")
            ranked = self._by_retrieval(cands)
        t0 = time.perf_counter()
        policy = "greedy"
        admit = self._admissible(req, hist)
        if self.explore is not None:
            shown = self._explore(req, ranked, hist, admit)
            policy = getattr(getattr(self.explore, "policy", None), "name", type(self.explore).__name__)
            if not req.explore:
                policy = "greedy"
        else:
            shown = [replace(it, propensity=1.0) for it in ranked[: req.k]]
        allowed = {it.item_id for it in ranked}
        kept = _first_of_each([x for x in shown if x.item_id in allowed or admit(x.item_id)])
        shown = [replace(it, position=p, title=it.title or self.dataset.items[it.item_id].title)
                 for p, it in enumerate(kept)][: req.k]
        trace.stage_seconds["explore"] = time.perf_counter() - t0
        if req.explain and shown:
            t0 = time.perf_counter()
            from llmrank.explain.explainer import Explainer

            explainer = self.explainer or Explainer(None)
            exps, call = explainer.explain(self._items(self._liked(req, hist)),
                                           self._items([s.item_id for s in shown]),
                                           known=cand_items, query=req.text)
            by_id = {e.item_id: e.text for e in exps}
            shown = [replace(s, explanation=by_id.get(s.item_id)) for s in shown]
            if call:
                trace.llm_calls.append(call)
            trace.stage_seconds["explain"] = time.perf_counter() - t0
        return RecResponse(req.request_id, req.user_id, shown, trace, policy)

    def _by_retrieval(self, cands: Sequence[Candidate]) -> list[RankedItem]:
        """Candidates ranked by their own scores, best first (stable: equal scores, e.g. given
        ids, keep their order), each score finite: a missing one (NaN, -inf) ranks last, +inf
        first, as the reranker's blend reads them; the raw score is kept when finite."""
        import numpy as np

        from llmrank.rerank.blend import fill_missing

        raw = np.asarray([c.score for c in cands], dtype=np.float64)
        score = fill_missing(raw)
        order = np.argsort(-score, kind="stable")
        return [RankedItem(cands[j].item_id, float(score[j]), pos,
                           retrieval_score=float(raw[j]) if np.isfinite(raw[j]) else None,
                           title=self.dataset.items[cands[j].item_id].title)
                for pos, j in enumerate(int(j) for j in order)]

    def _admissible(self, req: RecRequest, hist: list[str]) -> Callable[[str], bool]:
        """Whether an item retrieval did not return may still be shown (a must-show business
        rule): only a catalog item that the request's filters keep and, with ``exclude_seen``,
        that is not in the history. A business rule does not override the caller's filters."""
        from llmrank.retrieve.filters import compile_filters

        keep = compile_filters(req.filters, self.dataset.items)
        seen = set(hist) if req.filters.exclude_seen else set()

        def admit(item_id: str) -> bool:
            return (item_id in self.dataset.items and item_id not in seen
                    and (keep is None or keep(item_id)))

        return admit

    def _explore(self, req: RecRequest, ranked: Sequence[RankedItem], hist: list[str],
                 admit: Callable[[str], bool]) -> list[RankedItem]:
        """The explore stage's slate. The built-in step gets ``admit`` so that it adds only
        must-show items the response keeps: it logs the slate, which must be the one shown."""
        from llmrank.explore.step import ExploreStep

        assert self.explore is not None
        if isinstance(self.explore, ExploreStep):
            return self.explore(req, ranked, hist, admit=admit)
        return self.explore(req, ranked, hist)


def _build_retriever(dataset: Dataset, cfg: Config) -> Retriever:
    """Load the configured index folder (an error when it is not one: a mistyped path must
    not turn into an index built in memory), else build the configured kind."""
    from llmrank.retrieve.store import build_retriever, load_retriever

    if cfg.index.path:
        # refuses another dataset's index; the config's GPU and embedder settings apply
        return load_retriever(cfg.index.path, dataset=dataset, config=cfg)
    return build_retriever(dataset, cfg)


def _familiarity(dataset: Dataset, cfg: Config, reranker: Any, llm: Any) -> dict[str, float] | None:
    """Item id -> the LLM's familiarity with its title, when ``[policy] prior = "familiarity"``:
    computed with the reranker's model (or ``llm``, or the configured model loaded for this)."""
    if cfg.policy.prior != "familiarity":
        return None
    from llmrank.llm.familiarity import catalog_familiarity

    model = reranker.llm if reranker is not None else llm
    if model is None:
        from llmrank.llm.transformers_backend import TransformersLLM

        model = TransformersLLM(cfg.reranker.model)
    scores = catalog_familiarity(dataset, model, context=cfg.policy.prior_context)
    return dict(zip(dataset.item_ids, scores.tolist(), strict=True))


_Listed = TypeVar("_Listed", Candidate, RankedItem)


def _first_of_each(cands: Sequence[_Listed]) -> list[_Listed]:
    """Each item once, at its first (best) position (a stage's duplicate is never shown twice)."""
    out: list[_Listed] = []
    ids: set[str] = set()
    for c in cands:
        if c.item_id not in ids:
            ids.add(c.item_id)
            out.append(c)
    return out


def _anonymous_key(history: Sequence[str], text: str | None) -> str:
    """The permutation seed of a request without a user id: a digest of what it asks, so the
    same history or text is ranked the same way every time (a request id is a fresh uuid)."""
    import hashlib

    payload = "\x1f".join([*history, "\x1e", text or ""])
    return "anon:" + hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()[:16]
