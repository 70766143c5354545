"""The reranker as an eval-harness Ranker (used by the fine-tuning benchmark)."""

from __future__ import annotations

import numpy as np

from llmrank.finetune.config import PromptSpec
from llmrank.finetune.evaluate import RerankRanker


class CountingLLM:
    """Wraps a backend and counts scored prompts (to check the score cache)."""

    def __init__(self, inner):
        self.inner = inner
        self.prompts = 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def label_logprobs(self, prompts, labels):
        self.prompts += len(prompts)
        return self.inner.label_logprobs(prompts, labels)


def test_rerank_ranker_in_the_harness(split100k, tiny_model_dir, tmp_path):
    from llmrank.eval.config import EvalProtocol
    from llmrank.eval.runner import evaluate_ranker
    from llmrank.llm.transformers_backend import TransformersLLM

    llm = CountingLLM(TransformersLLM(str(tiny_model_dir), max_prompt_tokens=4096))
    spec = PromptSpec(max_history=3, max_prompt_tokens=4096)
    ranker = RerankRanker(llm=llm, prompt=spec, cache_path=tmp_path / "cache.jsonl")
    proto = EvalProtocol(name="candidates", stage="test", n_negatives=4, max_users=5)
    res = evaluate_ranker(ranker, split100k, proto, seed=0)
    assert res.n_users == 5 and llm.prompts == 5
    assert 0.0 <= res.summary["ndcg@10"].mean <= 1.0
    again = evaluate_ranker(ranker, split100k, proto, seed=0)
    assert llm.prompts == 5  # every row came from the cache
    np.testing.assert_array_equal(again.outcome.ranks, res.outcome.ranks)
    # a new ranker reads the cache written on disk: no model call either
    fresh = RerankRanker(llm=CountingLLM(llm.inner), prompt=spec, cache_path=tmp_path / "cache.jsonl")
    evaluate_ranker(fresh, split100k, proto, seed=0)
    assert fresh._llm.prompts == 0


def test_blend_weight_moves_toward_the_retrieval_order(split100k):
    class Fixed:  # an LLM that prefers the last candidate, a retriever the first
        def __init__(self, scores):
            self.scores = np.asarray(scores, dtype=float)

        def score(self, users, candidates, stage):
            return np.tile(self.scores, (len(users), 1))

    ranker = RerankRanker(llm=object(), retrieval=Fixed([4.0, 3.0, 2.0, 1.0]))
    ranker.fit(split100k, "test")
    ranker.raw_scores = lambda u, c, s: np.log(np.tile([0.1, 0.2, 0.3, 0.4], (len(u), 1)))
    users, cands = np.array([0, 1]), np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    assert ranker.score(users, cands, "test").argmax(axis=1).tolist() == [3, 3]
    assert ranker.with_weight(0.9).score(users, cands, "test").argmax(axis=1).tolist() == [0, 0]
    assert ranker.with_weight(0.9)._shared is ranker


def test_a_score_cache_is_not_read_under_other_prompt_settings(split100k, tiny_model_dir,
                                                               tmp_path):
    """Cached rows are keyed by (stage, user, candidates) only, so a cache file written under
    one prompt spec (or permutation count, seed) must not serve a ranker with another: its
    scores are of other prompts. Before, they were silently reused (the benchmark keeps one
    zero-shot cache per output folder, whatever the recipe's prompt settings)."""
    import pytest

    from llmrank.llm.transformers_backend import TransformersLLM

    llm = TransformersLLM(str(tiny_model_dir), max_prompt_tokens=4096)
    path = tmp_path / "cache.jsonl"
    spec = PromptSpec(max_history=3, max_prompt_tokens=4096)
    first = RerankRanker(llm=llm, prompt=spec, cache_path=path)
    first.fit(split100k, "test")
    users, cands = np.array([0, 1]), np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    scores = first.raw_scores(users, cands, "test")
    same = RerankRanker(llm=object(), prompt=spec, cache_path=path)  # no model call needed
    same.fit(split100k, "test")
    np.testing.assert_array_equal(same.raw_scores(users, cands, "test"), scores)
    for other in ({"prompt": PromptSpec(max_history=1, max_prompt_tokens=4096)},
                  {"prompt": spec, "permutations": 3}, {"prompt": spec, "seed": 1}):
        with pytest.raises(ValueError, match="other settings"):
            RerankRanker(llm=llm, cache_path=path, **other)


def test_a_score_cache_is_not_read_for_another_model_or_adapter(split100k, tmp_path):
    """The scores are the model's and the adapter's, but the cache's settings line recorded
    only the prompt spec, permutations and seed: a cache file written for one adapter served
    another's ranker its rows (eval/simulate/llm_prior.py keeps one llm_scores.jsonl per
    output folder, whatever --adapter). A file written before the line named them is read."""
    import json

    import pytest

    spec = PromptSpec(max_history=3, max_prompt_tokens=4096)
    path = tmp_path / "cache.jsonl"
    first = RerankRanker("default", "adapter-a", llm=object(), prompt=spec, cache_path=path)
    first.fit(split100k, "test")
    first._scorer = type("S", (), {"score": lambda self, reqs: [
        type("O", (), {"scores": np.arange(len(r.candidates), dtype=float)})() for r in reqs]})()
    users, cands = np.array([0]), np.array([[1, 2, 3, 4]])
    first.raw_scores(users, cands, "test")
    again = RerankRanker("default", "adapter-a", llm=object(), prompt=spec, cache_path=path)
    assert len(again._cache) == 1
    for model, adapter in (("default", "adapter-b"), ("default", None), ("other-base", "adapter-a")):
        with pytest.raises(ValueError, match="other settings"):
            RerankRanker(model, adapter, llm=object(), prompt=spec, cache_path=path)
    lines = path.read_text().splitlines()
    old = json.loads(lines[0])
    old["settings"] = {k: old["settings"][k] for k in ("prompt", "permutations", "seed")}
    path.write_text("\n".join([json.dumps(old), *lines[1:]]) + "\n")
    assert len(RerankRanker("default", "adapter-b", llm=object(), prompt=spec,
                            cache_path=path)._cache) == 1
