from __future__ import annotations

import re
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmrank.llm.fake import FakeLLM
from llmrank.records import Item
from llmrank.rerank.prompt import RankPromptBuilder
from llmrank.rerank.scorer import LabelScorer, RankInput, permutation, renormalise

ITEMS = [Item(str(i), f"Movie {i}", genres=("Drama",)) for i in range(80)]


def scorer(llm=None, **kw):
    llm = llm or FakeLLM()
    return LabelScorer(llm, RankPromptBuilder(llm), **kw)


def test_renormalise_is_a_distribution():
    p = np.exp(renormalise(np.array([[-3.0, -7.0, -1.0]])))
    np.testing.assert_allclose(p.sum(), 1.0)


def test_real_model_scores_a_distribution_over_exactly_the_candidates(tiny_llm):
    s = LabelScorer(tiny_llm, RankPromptBuilder(tiny_llm))
    out = s.score([RankInput(ITEMS[:3], ITEMS[10:30], key="u")])[0]
    assert sorted(out.order) == list(range(20))
    np.testing.assert_allclose(np.exp(out.scores).sum(), 1.0, atol=1e-6)
    assert out.n_prompts == 1 and out.prompt_tokens > 0


def test_permutation_zero_is_identity_and_others_seeded():
    assert list(permutation(5, 0, 1, "k")) == [0, 1, 2, 3, 4]
    np.testing.assert_array_equal(permutation(9, 2, 1, "k"), permutation(9, 2, 1, "k"))
    assert not np.array_equal(permutation(30, 1, 1, "k"), permutation(30, 1, 2, "k"))


def test_permutation_averaging_deterministic_and_batch_independent(tiny_llm):
    reqs = [RankInput(ITEMS[:2], ITEMS[10:18], key="u1"), RankInput([], ITEMS[20:26], key="u2")]
    a = scorer(tiny_llm, permutations=3, seed=7).score(reqs)
    b = scorer(tiny_llm, permutations=3, seed=7).score(reqs[::-1])[::-1]
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x.scores, y.scores, atol=1e-5)
        assert x.n_prompts == 3
    c = scorer(tiny_llm, permutations=3, seed=8).score(reqs)
    assert not np.allclose(a[0].scores, c[0].scores)


def test_more_candidates_than_labels(tiny_llm):
    for strategy in ("tournament", "window"):
        out = scorer(tiny_llm, strategy=strategy, max_labels=8).score(
            [RankInput([], ITEMS[:30], key="u")])[0]
        assert sorted(out.order) == list(range(30))
        assert out.n_prompts > 1


def test_one_backend_call_per_round_for_many_requests():
    llm = FakeLLM()
    reqs = [RankInput([], ITEMS[i: i + 10], key=str(i)) for i in range(6)]
    scorer(llm, permutations=2).score(reqs)
    assert llm.calls == [("label_logprobs", 12)]


def test_zero_and_one_candidate_need_no_model():
    llm = FakeLLM()
    outs = scorer(llm).score([RankInput([], []), RankInput([], ITEMS[:1])])
    assert outs[0].order == [] and outs[1].order == [0]
    assert llm.calls == []


GARBAGE = st.sampled_from([np.nan, np.inf, -np.inf, 0.0, 1e30, -1e30, 5.0])


@settings(max_examples=80, deadline=None)
@given(n=st.integers(0, 45), perms=st.integers(1, 3), strategy=st.sampled_from(["tournament", "window"]),
       garbage=st.lists(GARBAGE, min_size=1, max_size=5), dup=st.booleans())
def test_output_is_always_a_permutation_of_the_candidates(n, perms, strategy, garbage, dup):
    """Whatever the model returns (NaN, inf, constant rows), the order is exactly the
    candidates, once each."""
    llm = FakeLLM(scores=lambda p, labels: [garbage[i % len(garbage)] for i in range(len(labels))])
    cands = ITEMS[:n]
    out = scorer(llm, permutations=perms, strategy=strategy, max_labels=12).score(
        [RankInput(ITEMS[50:53] if dup else [], cands, key="k")])[0]
    assert sorted(out.order) == list(range(n))
    assert np.all(np.isfinite(out.scores))


def test_a_backend_returning_garbage_is_logged(caplog):
    """NaN, +inf or positive "log-probs" (raw logits, a broken server) are made safe, but an
    operator must hear of it: the ranking they give is no judgement of the model."""
    import logging

    cands = ITEMS[:5]
    with caplog.at_level(logging.WARNING, logger="llmrank.rerank.scorer"):
        scorer(FakeLLM(scores=lambda p, labels: [-1.0, -2.0, -3.0, -4.0, -5.0])).score([RankInput([], cands)])
        scorer(FakeLLM(scores=lambda p, labels: [-1.0, -np.inf, -3.0, -4.0, -5.0])).score([RankInput([], cands)])
    assert not caplog.records  # -inf is a label the model did not see: not garbage
    with caplog.at_level(logging.WARNING, logger="llmrank.rerank.scorer"):
        scorer(FakeLLM(scores=lambda p, labels: [np.nan, 2.0, np.inf, -1.0, -2.0])).score([RankInput([], cands)])
    assert any("3 of 5 label log-probs" in r.getMessage() for r in caplog.records)


_CANDIDATE_LINE = re.compile(r'^([A-Z])\. "([^".]*)', re.MULTILINE)


def _title_scores(target: str):
    """Scripted model: a label's log-prob depends only on the title on its candidate line
    (the target 0, every other title a fixed value below -2), wherever it is presented."""
    def by_title(title: str) -> float:
        return 0.0 if title == target else -2.0 - (zlib.crc32(title.encode()) % 600) / 100.0

    def scores(prompt: str, labels: list[str]) -> list[float]:
        title_of = dict(_CANDIDATE_LINE.findall(prompt.split("Candidates:", 1)[1]))
        assert len(title_of) == len(labels)
        return [by_title(title_of[lab.strip()]) for lab in labels]

    return scores, by_title


def test_label_scores_reach_the_candidate_on_that_label_line():
    """The log-prob of label X must score the candidate printed under X, in every permutation
    (a mapping back through the wrong permutation, or reversed labels, promotes another one)."""
    cands = list(ITEMS[:11])
    target = 7
    cands[target] = Item("t", "The Chosen One", genres=("Drama",))
    script, by_title = _title_scores("The Chosen One")
    expected = renormalise(np.array([by_title(c.title) for c in cands]))
    for perms in (1, 3):
        out = scorer(FakeLLM(scores=script), permutations=perms, seed=3).score(
            [RankInput(ITEMS[60:62], cands, key="u")])[0]
        assert out.order[0] == target and out.n_prompts == perms
        # each candidate's score is the same in every ordering: the average is that score
        np.testing.assert_allclose(out.scores, expected, atol=1e-9)
        assert out.order == [int(i) for i in np.argsort(-expected, kind="stable")]


@pytest.mark.parametrize("strategy", ["tournament", "window"])
@pytest.mark.parametrize("perms", [1, 3])
def test_label_scores_reach_the_candidate_across_windows(strategy, perms):
    """More candidates than labels: the item the model always picks wins every window it is
    in, so it ranks first, strictly above every other candidate."""
    for target in (0, 13, 29):
        cands = list(ITEMS[:30])
        cands[target] = Item("t", "The Chosen One", genres=("Drama",))
        script, _ = _title_scores("The Chosen One")
        out = scorer(FakeLLM(scores=script), permutations=perms, strategy=strategy, max_labels=8,
                     seed=5).score([RankInput([], cands, key="u")])[0]
        assert out.n_prompts > perms
        assert out.order[0] == target, (strategy, perms, target)
        others = np.delete(out.scores, target)
        assert out.scores[target] > others.max() + 0.5


@pytest.mark.parametrize("strategy", ["tournament", "window"])
@pytest.mark.parametrize("perms", [1, 3])
@pytest.mark.parametrize("value", [np.nan, -np.inf, -4.0])
def test_a_model_that_says_nothing_keeps_the_given_order(strategy, perms, value):
    """Constant label rows (garbage made safe, or a top-N server that returned none of the
    labels, so every label got the same floor) carry no preference: the candidates keep the
    given (retrieval) order. The tournament's cut between survivors and losers, and the
    permutations, used to reorder them in blocks."""
    llm = FakeLLM(scores=lambda p, labels: [value] * len(labels))
    out = scorer(llm, permutations=perms, strategy=strategy, max_labels=8).score(
        [RankInput([], ITEMS[:25], key="u")])[0]
    assert out.order == list(range(25))
    assert np.all(np.isfinite(out.scores))
