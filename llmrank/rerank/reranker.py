"""The rerank stage: retrieved candidates in, candidates reordered by the LLM out, with the
trace of the LLM calls. Builds its scorer from a RerankerConfig; when an adapter (or a model
merged from one) is given, its manifest's prompt settings are used so inference renders the
prompts it was trained on."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from llmrank.llm.base import LLM
from llmrank.records import Item, LLMCall, RankedItem
from llmrank.rerank.blend import blend
from llmrank.rerank.prompt import RankPromptBuilder
from llmrank.rerank.scorer import LabelScorer, RankInput

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RerankRequest:
    history: Sequence[Item]
    candidates: Sequence[Item]
    retrieval_scores: Sequence[float] | None = None
    query: str | None = None
    key: str = ""  # seeds permutations (user or request id)

    def __post_init__(self) -> None:
        """One retrieval score per candidate: a list of another length failed deep in the
        blend (an IndexError or a numpy broadcast error, or a batch job's line lost to it)."""
        if self.retrieval_scores is not None and len(self.retrieval_scores) != len(self.candidates):
            from llmrank.errors import InvalidRequestError

            raise InvalidRequestError(f"{len(self.retrieval_scores)} retrieval scores for "
                                      f"{len(self.candidates)} candidates: give one per candidate")


@dataclass
class RerankResult:
    items: list[RankedItem]  # every candidate exactly once, best first
    call: LLMCall | None


class LLMReranker:
    def __init__(self, llm: LLM, builder: RankPromptBuilder | None = None, *,
                 permutations: int = 1, seed: int = 0, strategy: str = "tournament",
                 max_labels: int = 20, blend_retrieval: float = 0.0) -> None:
        self.llm = llm
        self.builder = builder or RankPromptBuilder(llm)
        self.scorer = LabelScorer(llm, self.builder, permutations=permutations, seed=seed,
                                  strategy=strategy, max_labels=max_labels)
        self.blend_retrieval = blend_retrieval

    @classmethod
    def from_config(cls, cfg: Any, *, seed: int = 0, llm: LLM | None = None) -> LLMReranker:
        """From a RerankerConfig. ``llm`` overrides the configured backend (tests, sharing one
        model between stages); the configured adapter is loaded on it and made active (its
        manifest's prompt settings render the prompts, so its weights must score them)."""
        if llm is None:
            llm = create_llm(cfg)
        elif cfg.adapter:
            llm.load_adapter(cfg.adapter)
        builder = _builder_for(llm, cfg)
        return cls(llm, builder, permutations=cfg.permutations, seed=seed, strategy=cfg.strategy,
                   max_labels=cfg.max_labels, blend_retrieval=cfg.blend_retrieval)

    def describe(self) -> str:
        adapter = f" + {self.llm.adapter}" if self.llm.adapter else ""
        t = self.builder.template
        return (f"{self.llm.name}:{self.llm.model_id}{adapter} ({t.name}@{t.version}, "
                f"{self.scorer.permutations} perm.)")

    def rerank_many(self, requests: Sequence[RerankRequest]) -> list[RerankResult]:
        """Rerank all requests together (their prompts are batched)."""
        start = time.perf_counter()
        uniq = [_dedupe(r) for r in requests]
        outs = self.scorer.score([RankInput(r.history, r.candidates, r.query, r.key) for r in uniq])
        seconds = (time.perf_counter() - start) / max(1, len(requests))
        results = []
        for req, out in zip(uniq, outs, strict=True):
            retr = np.asarray(req.retrieval_scores, dtype=np.float64) if req.retrieval_scores is not None else None
            final = blend(out.scores, retr, self.blend_retrieval)
            order = [int(j) for j in np.argsort(-final, kind="stable")]
            items = [RankedItem(
                item_id=req.candidates[j].item_id, score=float(final[j]), position=pos,
                retrieval_score=None if retr is None or not np.isfinite(retr[j]) else float(retr[j]),
                rerank_score=float(out.scores[j]), title=req.candidates[j].title,
            ) for pos, j in enumerate(order)]
            call = None
            if out.n_prompts:
                t = self.builder.template
                call = LLMCall(stage="rerank", backend=self.llm.name, model=self.llm.model_id,
                               adapter=self.llm.adapter, template=t.name, template_version=t.version,
                               prompt_tokens=out.prompt_tokens, seconds=seconds, n_prompts=out.n_prompts)
            results.append(RerankResult(items, call))
        return results

    def rerank(self, request: RerankRequest) -> RerankResult:
        return self.rerank_many([request])[0]


def _dedupe(req: RerankRequest) -> RerankRequest:
    """Each candidate once (first occurrence wins), retrieval scores kept aligned."""
    seen: set[str] = set()
    keep = []
    for j, c in enumerate(req.candidates):
        if c.item_id not in seen:
            seen.add(c.item_id)
            keep.append(j)
    if len(keep) == len(req.candidates):
        return req
    scores = None if req.retrieval_scores is None else [req.retrieval_scores[j] for j in keep]
    return RerankRequest(req.history, [req.candidates[j] for j in keep], scores, req.query, req.key)


def create_llm(cfg: Any) -> LLM:
    """The backend a RerankerConfig names, built through the registry (no name switch)."""
    from llmrank.registry import llms

    kwargs: dict[str, Any] = {"model": cfg.model, "adapter": cfg.adapter,
                              "max_prompt_tokens": cfg.max_prompt_tokens, **cfg.options}
    for key in ("batch_size", "device", "dtype"):
        kwargs.setdefault(key, getattr(cfg, key))
    llm: LLM = llms.create(cfg.backend, **kwargs)
    return llm


def _builder_for(llm: LLM, cfg: Any) -> RankPromptBuilder:
    """The prompt settings the model was trained with (``trained_builder``); the config's
    otherwise."""
    return trained_builder(llm, cfg) or RankPromptBuilder(
        llm, cfg.template, max_history=cfg.max_history, max_prompt_tokens=cfg.max_prompt_tokens)


def trained_builder(llm: Any, cfg: Any) -> RankPromptBuilder | None:
    """The builder of the prompts a reranker config's model was trained on: its adapter's
    manifest, or a merged model's (``llmrank finetune --merge`` copies the manifest into the
    model folder); None for a base model. ``llmrank prompts render`` shows the same."""
    try:
        from llmrank.finetune.artifacts import merged_prompt_spec, prompt_spec_for
        from llmrank.finetune.prompting import make_builder
    except ImportError:  # pragma: no cover - finetune is part of the base install
        log.warning("finetune package unavailable; trained prompt settings ignored")
        return None
    if cfg.adapter:
        return make_builder(llm, prompt_spec_for(cfg.adapter))
    merged = merged_prompt_spec(cfg.model)
    if merged is None:
        return None
    log.info("model %s is a merged adapter: using its trained prompt settings", cfg.model)
    return make_builder(llm, merged)
