"""The reranker as an eval-harness Ranker, to measure an adapter against the zero-shot model
under the 20-candidate and retriever top-N protocols.

Scores are the reranker's: one-pass label scoring (``LabelScorer``) of prompts rendered with
the adapter's own prompt settings (from its manifest). Raw label log-probs are cached per
(stage, user, candidates), in memory and optionally on disk, so that re-weighting the blend
with the retriever costs no model call and a killed evaluation loses nothing.

Blend: with a fitted ``retrieval`` Ranker (e.g. the eval harness's RetrieverRanker) and
``blend_weight`` w > 0, the final score is the production reranker's blend
(``llmrank.rerank.blend``): (1 - w) z(LLM) + w z(retrieval score), z-scored per user. w=0 is
the LLM alone, w=1 the retriever's own order."""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from llmrank.data.splits import LeaveOneOut
from llmrank.eval.base import check_stage
from llmrank.finetune.artifacts import prompt_spec_for
from llmrank.finetune.config import PromptSpec

log = logging.getLogger(__name__)


class RerankRanker:
    """Eval Ranker for a base model plus optional adapter (candidate protocols only)."""

    def __init__(self, model: str = "default", adapter: str | None = None, *,
                 name: str | None = None, prompt: PromptSpec | None = None,
                 permutations: int = 1, seed: int = 0, batch_size: int = 4,
                 retrieval: Any = None, blend_weight: float = 0.0,
                 cache_path: str | Path | None = None, llm: Any = None,
                 prefix_reuse: bool | None = False) -> None:
        self.model = model
        self.adapter = adapter
        self.name = name or (f"rerank+{Path(adapter).name}" if adapter else "rerank-zero-shot")
        self.prompt = prompt or prompt_spec_for(adapter, model)
        self.permutations = permutations
        self.seed = seed
        self.batch_size = batch_size
        self.retrieval = retrieval
        self.blend_weight = float(blend_weight)
        self.cache_path = Path(cache_path) if cache_path else None
        self._llm = llm
        self.prefix_reuse = prefix_reuse
        self._scorer: Any = None
        self._shared: RerankRanker | None = None  # with_weight copies use this one's model
        self._split: LeaveOneOut | None = None
        self._cache: dict[str, list[float]] = {}
        if self.cache_path and self.cache_path.is_file():
            self._read_cache(self.cache_path)
            log.info("%s: %d cached score rows from %s", self.name, len(self._cache), self.cache_path)

    def cache_settings(self) -> dict[str, Any]:
        """What the cached scores depend on besides (stage, user, candidates): the model and
        adapter (as named here), the prompt settings, the permutation count and the seed. A
        cache file's first line records them."""
        return {"model": str(self.model), "adapter": str(self.adapter) if self.adapter else None,
                "prompt": dataclasses.asdict(self.prompt), "permutations": self.permutations,
                "seed": self.seed}

    def _read_cache(self, path: Path) -> None:
        """Load the rows of ``path``; ValueError when it was written under other settings
        (its rows are scores of other prompts or another model). A file without a settings
        line, or whose line lacks the model and adapter (written before they were recorded),
        is checked on what it records."""
        mine = json.loads(json.dumps(self.cache_settings()))
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            rec = json.loads(line)
            if "settings" in rec:
                known = {k: v for k, v in mine.items()
                         if k in rec["settings"] or k not in ("model", "adapter")}
                if rec["settings"] != known:
                    raise ValueError(f"score cache {path} was written under other settings "
                                     f"({rec['settings']}, not {mine}): use another cache_path")
                continue
            self._cache[rec["key"]] = rec["scores"]

    def fit(self, split: LeaveOneOut, stage: str) -> None:
        self._split = split
        check_stage(stage)

    def with_weight(self, weight: float, name: str | None = None) -> RerankRanker:
        """The same reranker (model, prompts, score cache) with another blend weight."""
        clone = copy.copy(self)
        clone.blend_weight = float(weight)
        clone.name = name or f"{self.name}-w{weight:g}"
        clone._shared = self._shared or self
        return clone

    def _scorer_(self) -> Any:
        if self._shared is not None:
            return self._shared._scorer_()
        if self._scorer is None:
            from llmrank.finetune.prompting import make_builder
            from llmrank.rerank.scorer import LabelScorer

            if self._llm is None:
                from llmrank.llm.transformers_backend import TransformersLLM

                self._llm = TransformersLLM(self.model, self.adapter, batch_size=self.batch_size,
                                            prefix_reuse=self.prefix_reuse)
            self._scorer = LabelScorer(self._llm, make_builder(self._llm, self.prompt),
                                       permutations=self.permutations, seed=self.seed)
        return self._scorer

    def raw_scores(self, users: np.ndarray, candidates: np.ndarray, stage: str) -> np.ndarray:
        """Renormalised label log-probs (n_users, n_cand), cached."""
        from llmrank.rerank.scorer import RankInput

        if self._split is None:
            raise RuntimeError("call fit(split, stage) first")
        ds = self._split.dataset
        items = ds.items
        out = np.zeros(candidates.shape, dtype=np.float64)
        todo: list[tuple[int, str, Any]] = []
        for row, (u, cands) in enumerate(zip(users.tolist(), candidates, strict=True)):
            key = f"{stage}:{u}:{','.join(map(str, cands.tolist()))}"
            if key in self._cache:
                out[row] = self._cache[key]
                continue
            hist = [items[ds.item_ids[c]] for c in self._split.history(int(u), stage)]
            req = RankInput(hist, [items[ds.item_ids[c]] for c in cands], key=str(u))
            todo.append((row, key, req))
        if todo:
            results = self._scorer_().score([t[2] for t in todo])
            lines = []
            for (row, key, _), res in zip(todo, results, strict=True):
                out[row] = res.scores
                self._cache[key] = [float(x) for x in res.scores]
                lines.append(json.dumps({"key": key, "scores": self._cache[key]}))
            if self.cache_path:
                self.cache_path.parent.mkdir(parents=True, exist_ok=True)
                if not self.cache_path.is_file():
                    lines.insert(0, json.dumps({"settings": self.cache_settings()}))
                with open(self.cache_path, "a", encoding="utf-8") as fh:
                    fh.write("\n".join(lines) + "\n")
        return out

    def score(self, users: np.ndarray, candidates: np.ndarray | None, stage: str) -> np.ndarray:
        if candidates is None:
            raise ValueError(f"{self.name} reranks candidates; it cannot score the full catalog")
        users, candidates = np.asarray(users), np.asarray(candidates)
        scores = self.raw_scores(users, candidates, stage)
        if self.blend_weight > 0 and self.retrieval is not None:
            from llmrank.rerank.blend import blend

            retr = np.asarray(self.retrieval.score(users, candidates, stage), dtype=np.float64)
            scores = np.stack([blend(s, r, self.blend_weight) for s, r in zip(scores, retr, strict=True)])
        return scores
