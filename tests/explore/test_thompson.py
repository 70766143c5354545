"""Thompson sampling with both posterior models ("beta", "gamma") and both priors ("score",
"flat"): per-item and per-segment evidence, and what each buys in a small known world."""

from __future__ import annotations

import numpy as np
import pytest

from llmrank.explore import ExploreContext, make_policy
from llmrank.explore.policies.base import Request

RANKED = [(f"i{j}", float(s)) for j, s in enumerate([3.0, 2.5, 2.4, 1.0, 0.7, 0.2, -0.5, -1.0])]
IDS = [i for i, _ in RANKED]


def _post(policy, segment=None):
    return policy.posterior(Request.make(RANKED, ExploreContext(user_id="u", segment=segment), None))


def test_gamma_posterior_per_item_and_per_segment():
    """Gamma model: a click adds 1 to the shape and the prior's expected clicks to the rate, in
    full for the same segment and for segment-free requests (per-item evidence), and with weight
    ``segment_pooling`` for another segment."""
    policy = make_policy("thompson", {"prior_strength": 5.0, "segment_pooling": 0.25})
    _, _, mu = _post(policy, "young")
    slate = policy.select(RANKED, 2, ExploreContext(user_id="u", segment="young"))
    policy.update(ExploreContext(user_id="u", segment="young"), slate, [1.0, 0.0])
    j, m = IDS.index(slate.items[0]), IDS.index(slate.items[1])
    assert policy.segment_counts[("young", slate.items[0])][0] == 1.0
    assert ("old", slate.items[0]) not in policy.segment_counts
    a_same, b_same, _ = _post(policy, "young")
    a_other, b_other, _ = _post(policy, "old")
    a_none, b_none, _ = _post(policy, None)
    assert a_same[j] == pytest.approx(6.0) and b_same[j] == pytest.approx(5.0 + mu[j])
    assert a_other[j] == pytest.approx(5.25) and b_other[j] == pytest.approx(5.0 + 0.25 * mu[j])
    assert a_none[j] == pytest.approx(6.0) and b_none[j] == pytest.approx(5.0 + mu[j])
    # the shown, unclicked item: no shape gain, its expected clicks still count
    assert a_same[m] == pytest.approx(5.0) and b_same[m] == pytest.approx(5.0 + mu[m])
    # items never shown keep the prior
    untouched = [i for i in range(len(IDS)) if i not in (j, m)]
    np.testing.assert_allclose(a_other[untouched], 5.0)


@pytest.mark.parametrize("pooling", [0.0, 1.0])
def test_beta_segment_pooling_extremes(pooling):
    """pooling 0: another segment's evidence is ignored; 1: segments share all evidence."""
    policy = make_policy("thompson", {"model": "beta", "prior_strength": 10.0, "segment_pooling": pooling})
    ctx = ExploreContext(user_id="u", segment="a")
    slate = policy.select(RANKED, 1, ctx)
    for _ in range(4):
        policy.update(ctx, slate, [1.0])
    j = IDS.index(slate.items[0])
    a, b, mu = _post(policy, "b")  # Beta(n0 mu + S, n0 (1 - mu) + F), mu the current prior mean
    assert a[j] - 10.0 * mu[j] == pytest.approx(4.0 * pooling)
    assert b[j] - 10.0 * (1.0 - mu[j]) == pytest.approx(0.0, abs=1e-9)


def _segment_world(model, pooling, rounds=300, seed=3):
    """Segment a clicks only i5, segment b only i6 (both ranked low by the prior); returns, per
    segment, the share of the last 100 of its requests whose top slot held its own item."""
    policy = make_policy("thompson", {"model": model, "prior_strength": 10.0, "base_rate": 0.1,
                                      "segment_pooling": pooling, "seed": seed})
    fav = {"a": "i5", "b": "i6"}
    top = {"a": [], "b": []}
    for t in range(rounds):
        seg = "ab"[t % 2]
        ctx = ExploreContext(user_id=f"u{t % 7}", segment=seg)
        s = policy.select(RANKED, 3, ctx, propensities=False)
        policy.update(ctx, s, [1.0 if i == fav[seg] else 0.0 for i in s.items])
        top[seg].append(s.items[0] == fav[seg])
    return {seg: float(np.mean(v[-100:])) for seg, v in top.items()}


@pytest.mark.parametrize("model", ["beta", "gamma"])
def test_per_segment_posteriors_learn_opposite_tastes(model):
    alone = _segment_world(model, pooling=0.0)
    shared = _segment_world(model, pooling=1.0)
    assert min(alone.values()) > 0.7, alone  # each segment puts its own item on top
    # one pooled posterior cannot put different items on top for the two segments
    assert min(shared.values()) < 0.65, shared
    assert sum(alone.values()) > sum(shared.values()) + 0.6


WIDE = [(f"i{j}", float(-j)) for j in range(30)]


def _clicks(policy, rounds, rng):
    """Known world over 30 candidates: the ranker is right, i0 is clicked w.p. 0.6 and i1 w.p.
    0.3, the others w.p. 0.02."""
    p = {"i0": 0.6, "i1": 0.3}
    total = 0.0
    for _ in range(rounds):
        s = policy.select(WIDE, 2, propensities=False)
        r = [float(rng.random() < p.get(i, 0.02)) for i in s.items]
        policy.update(ExploreContext(), s, r)
        total += sum(r)
    return total


@pytest.mark.parametrize("model", ["beta", "gamma"])
def test_score_prior_learns_faster_than_flat(model):
    """Early clicks of the same bandit with the ranker prior and started flat, over 5 seeds."""
    prior, flat = [], []
    for seed in range(5):
        opts = {"model": model, "prior_strength": 10.0, "base_rate": 0.1, "seed": seed}
        prior.append(_clicks(make_policy("thompson", opts), 60, np.random.default_rng(seed)))
        flat.append(_clicks(make_policy("thompson", {**opts, "prior": "flat"}), 60,
                            np.random.default_rng(seed)))
    assert np.mean(prior) > np.mean(flat) + 5, (prior, flat)
