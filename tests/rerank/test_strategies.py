from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmrank.rerank.strategies import SingleJob, TournamentJob, WindowJob, make_job


def run(job, truth):
    """Drive a job with scores that follow a known true utility per candidate."""
    rounds = 0
    while windows := job.pending():
        rounds += 1
        job.feed([np.log(np.exp(truth[w]) / np.exp(truth[w]).sum()) for w in windows])
    return job.result(), rounds


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 120), labels=st.integers(2, 26), strategy=st.sampled_from(["tournament", "window"]),
       seed=st.integers(0, 1000))
def test_every_candidate_scored_once_and_windows_fit(n, labels, strategy, seed):
    truth = np.random.default_rng(seed).normal(size=n)
    job = make_job(n, labels, strategy)
    seen_windows = []
    while windows := job.pending():
        assert all(0 < len(w) <= labels and len(set(w)) == len(w) for w in windows)
        seen_windows += windows
        job.feed([truth[w] - np.logaddexp.reduce(truth[w]) for w in windows])
    scores = job.result()
    assert scores.shape == (n,) and np.all(np.isfinite(scores))
    assert set().union(*map(set, seen_windows)) == set(range(n))
    assert np.argmax(scores) == np.argmax(truth)  # a consistent scorer's best item always wins


@pytest.mark.parametrize("cls", [TournamentJob, WindowJob])
def test_top_items_exact_under_consistent_scores(cls):
    truth = np.random.default_rng(0).normal(size=57)
    scores, rounds = run(cls(57, 20), truth)
    assert rounds >= 2
    top = np.argsort(-truth)[:5]
    assert list(np.argsort(-scores)[:5]) == list(top)


def test_single_job_and_bad_strategy():
    assert isinstance(make_job(5, 20, "tournament"), SingleJob)
    with pytest.raises(ValueError, match="unknown strategy"):
        make_job(30, 20, "bogus")


@pytest.mark.parametrize(("n", "labels"), [(40, 20), (57, 20), (120, 20), (120, 4)])
def test_tournament_knocked_out_items_compared_on_one_scale(n, labels):
    """Items knocked out of different groups in one round share a level, but their log-probs
    are renormalised over different windows: a strong group's loser reads lower than a weak
    group's loser the model likes less. Under a consistent model every level must follow the
    model's preference (the survivors tie each group to the next round's scale)."""
    truth = np.random.default_rng(n).normal(size=n)
    truth[: n // 2] += 3.0  # the groups of the front half are much stronger
    job = TournamentJob(n, labels)
    scores, rounds = run(job, truth)
    assert rounds >= 2
    for idx, _ in job.levels:
        idx = np.asarray(idx)
        assert list(idx[np.argsort(-scores[idx], kind="stable")]) == list(idx[np.argsort(-truth[idx])])
