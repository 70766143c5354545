from __future__ import annotations

import numpy as np
import pytest

from llmrank.errors import ConfigError, UnknownBackendError
from llmrank.explore import ExploreContext, ItemFeatures, Policy, make_policy
from llmrank.registry import policies

RANKED = [(f"i{j}", float(s)) for j, s in enumerate([3.0, 2.5, 2.4, 1.0, 0.7, 0.2, -0.5, -1.0])]
ALL = [("greedy", {}), ("egreedy", {"epsilon": 0.3}), ("softmax", {"temperature": 0.7}),
       ("thompson", {"prior_strength": 30.0}), ("linucb", {}), ("linucb", {"mode": "ts", "alpha": 0.5})]


def _freq(policy, k, n_draws, ctx=None):
    ids = [i for i, _ in RANKED]
    counts = np.zeros((k, len(ids)))
    for _ in range(n_draws):
        s = policy.select(RANKED, k, ctx, propensities=False)
        for p, item in enumerate(s.items):
            counts[p, ids.index(item)] += 1
    return counts / n_draws


def test_registry_names_and_unknown_option():
    assert {"greedy", "egreedy", "softmax", "thompson", "linucb"} <= set(policies.names())
    with pytest.raises(UnknownBackendError, match="valid names"):
        make_policy("nope")
    with pytest.raises(ConfigError, match="epsilon"):
        make_policy("greedy", {"epsilon": 0.1})
    with pytest.raises(ConfigError):
        make_policy("egreedy", {"epsilon": 2.0})


@pytest.mark.parametrize(("name", "opts"), ALL)
def test_propensities_are_valid_marginals(name, opts):
    policy = make_policy(name, opts)
    assert isinstance(policy, Policy)
    mat, _ = policy.marginals(RANKED, 4)
    assert mat.shape == (4, len(RANKED))
    np.testing.assert_allclose(mat.sum(1), 1.0, atol=1e-9)  # each position holds one item
    assert (mat >= 0).all() and (mat.sum(0) <= 1.0 + 1e-9).all()  # an item is shown once at most
    slate = policy.select(RANKED, 4, ExploreContext(user_id="u"))
    assert len(slate.items) == 4 and len(set(slate.items)) == 4
    assert slate.propensities is not None
    assert all(0.0 < p <= 1.0 for p in slate.propensities)


@pytest.mark.parametrize(("name", "opts"), [("egreedy", {"epsilon": 0.4}), ("softmax", {"temperature": 0.8})])
def test_exact_propensities_match_monte_carlo(name, opts):
    policy = make_policy(name, opts)
    exact, method = policy.marginals(RANKED, 3)
    assert method == "exact"
    freq = _freq(policy, 3, 2000)
    assert np.abs(freq - exact).max() < 0.05  # ~4.5 standard errors at p = 0.5


def test_thompson_monte_carlo_propensities_match_sampling():
    policy = make_policy("thompson", {"prior_strength": 20.0, "mc_samples": 4000})
    mc, method = policy.marginals(RANKED, 3)
    assert method == "mc:4000"
    assert np.abs(_freq(policy, 3, 2000) - mc).max() < 0.055


@pytest.mark.parametrize(("name", "opts"), ALL)
def test_seeds_make_runs_reproducible(name, opts):
    a = make_policy(name, {**opts, "seed": 7})
    b = make_policy(name, {**opts, "seed": 7})
    runs = []
    for policy in (a, b):
        out = []
        for t in range(15):
            s = policy.select(RANKED, 3, ExploreContext(user_id="u"))
            policy.update(ExploreContext(user_id="u"), s, [float(t % 2), 0.0, 0.0])
            out.append((tuple(s.items), tuple(s.propensities or ())))
        runs.append(out)
    assert runs[0] == runs[1]
    if name not in ("greedy", "linucb") or opts.get("mode") == "ts":
        c = make_policy(name, {**opts, "seed": 8})
        other = [tuple(c.select(RANKED, 3).items) for _ in range(15)]
        assert other != [r[0] for r in runs[0]]


def test_thompson_beta_posterior_updates_and_segments():
    policy = make_policy("thompson", {"model": "beta", "prior_strength": 10.0, "segment_pooling": 0.25})
    from llmrank.explore.policies.base import Request

    ctx = ExploreContext(user_id="u", segment="young")
    a0, b0, mu = policy.posterior(Request.make(RANKED, ctx, None))
    np.testing.assert_allclose(a0 + b0, 10.0)
    assert np.all(np.diff(mu) <= 1e-12)  # prior mean follows the ranker's order
    slate = policy.select(RANKED, 2, ctx)
    first, second = slate.items
    policy.update(ctx, slate, [1.0, 0.0])
    assert policy.item_counts[first][:2] == [1.0, 0.0]
    assert policy.item_counts[second][:2] == [0.0, 1.0]
    assert policy.segment_counts[("young", first)][:2] == [1.0, 0.0]
    j = [i for i, _ in RANKED].index(first)
    # same segment: the click counts fully; another segment: pooled with weight 0.25
    a1, b1, _ = policy.posterior(Request.make(RANKED, ctx, None))
    assert abs((a1[j] + b1[j]) - 11.0) < 1e-9
    a2, b2, _ = policy.posterior(Request.make(RANKED, ExploreContext(user_id="v", segment="old"), None))
    assert abs((a2[j] + b2[j]) - 10.25) < 1e-9


def test_thompson_gamma_multiplier_counts_expected_clicks():
    policy = make_policy("thompson", {"prior_strength": 5.0})
    from llmrank.explore.policies.base import Request

    ctx = ExploreContext(user_id="u")
    req = Request.make(RANKED, ctx, None)
    a0, b0, mu0 = policy.posterior(req)
    np.testing.assert_allclose(a0, 5.0)
    np.testing.assert_allclose(b0, 5.0)  # multiplier ~ Gamma(5, 5): mean 1, the prior as is
    slate = policy.select(RANKED, 2, ctx)
    policy.update(ctx, slate, [1.0, 0.0])
    j = [i for i, _ in RANKED].index(slate.items[0])
    a1, b1, _ = policy.posterior(Request.make(RANKED, ctx, None))
    assert a1[j] == pytest.approx(6.0)  # one click
    assert b1[j] == pytest.approx(5.0 + mu0[j])  # plus the clicks the prior expected


def test_thompson_learns_which_item_clicks():
    """Item i5 (ranked 6th) is the only one that ever gets clicked: TS moves it up."""
    policy = make_policy("thompson", {"prior_strength": 20.0, "seed": 1})
    shown_top = 0
    for t in range(600):
        s = policy.select(RANKED, 3, propensities=False)
        policy.update(ExploreContext(), s, [1.0 if i == "i5" else 0.0 for i in s.items])
        shown_top += t >= 500 and s.items[0] == "i5"
    assert shown_top > 80


def test_flat_prior_ignores_scores():
    from llmrank.explore.policies.base import Request

    req = Request.make(RANKED, ExploreContext(), None)
    beta = make_policy("thompson", {"prior": "flat", "model": "beta", "base_rate": 0.1,
                                    "prior_strength": 10.0})
    a, b, _ = beta.posterior(req)
    np.testing.assert_allclose(a, 1.0)
    np.testing.assert_allclose(b, 9.0)
    gamma = make_policy("thompson", {"prior": "flat", "base_rate": 0.1})
    np.testing.assert_allclose(gamma.prior_mean(req), 0.1)


def _linear_world(seed=0, n_items=40, d=6):
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(n_items, d))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    feats = ItemFeatures([f"i{j}" for j in range(n_items)], embeddings=emb)
    w_true = rng.normal(size=d) * 2
    return rng, feats, emb, w_true


def test_linucb_learns_a_linear_reward():
    """Reward = Bernoulli(sigmoid-free linear p = 0.5 + 0.4 * (u * v) . w / |w|): the bandit's
    cumulative reward in its last rounds beats random, and its weights align with w."""
    rng, feats, emb, w = _linear_world()
    policy = make_policy("linucb", {"use_prior_score": False, "alpha": 0.3}, features=feats)
    u = np.ones(emb.shape[1]) / np.sqrt(emb.shape[1])
    p_true = np.clip(0.5 + 0.4 * ((emb * u) @ w) / np.abs((emb * u) @ w).max(), 0, 1)
    late, late_random = [], []
    for t in range(400):
        cand = rng.choice(40, size=10, replace=False)
        ranked = [(f"i{c}", 0.0) for c in cand]
        ctx = ExploreContext(user_vector=u)
        s = policy.select(ranked, 2, ctx, propensities=False)
        r = [float(rng.random() < p_true[int(i[1:])]) for i in s.items]
        policy.update(ctx, s, r)
        if t >= 300:
            late.append(np.mean([p_true[int(i[1:])] for i in s.items]))
            late_random.append(p_true[cand].mean())
    assert np.mean(late) > np.mean(late_random) + 0.15
    theta = policy.theta[: emb.shape[1]]  # type: ignore[attr-defined]
    cos = theta @ (w * u) / (np.linalg.norm(theta) * np.linalg.norm(w * u))
    assert cos > 0.8


def test_linucb_prior_starts_like_the_ranker():
    _, feats, _, _ = _linear_world()
    policy = make_policy("linucb", {"alpha": 0.0}, features=feats)
    ranked = [(f"i{j}", float(10 - j)) for j in range(10)]
    assert policy.select(ranked, 3).items == ["i0", "i1", "i2"]


def test_linucb_can_reduce_wide_item_vectors_and_keeps_them_for_the_other_steps():
    """embedding_dim = 32 gives the bandit 32 PCA features (+ prior + bias) of a 384-d text
    index; the policy's shared features (MMR, calibration) keep every dimension."""
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(60, 384))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    feats = ItemFeatures([f"i{j}" for j in range(60)], embeddings=emb)
    assert make_policy("linucb", {}, features=feats).dim == 384 + 2  # type: ignore[attr-defined]
    policy = make_policy("linucb", {"embedding_dim": 32}, features=feats)
    assert policy.dim == 32 + 2  # type: ignore[attr-defined]
    assert policy.features is feats and feats.embeddings.shape[1] == 384
    ranked = [(f"i{j}", float(10 - j)) for j in range(10)]
    ctx = ExploreContext(history=["i11", "i12"])
    s = policy.select(ranked, 3, ctx, propensities=False)
    policy.update(ctx, s, [1.0, 0.0, 0.0])
    wide_user = ExploreContext(user_vector=emb[11])  # a caller's vector in the index's space
    assert len(policy.select(ranked, 3, wide_user, propensities=False).items) == 3
    assert make_policy("linucb", {"embedding_dim": 0}, features=feats).dim == 384 + 2  # type: ignore[attr-defined]
    assert make_policy("linucb", {"embedding_dim": 500}, features=feats).dim == 384 + 2  # type: ignore[attr-defined]
    with pytest.raises(ConfigError):
        make_policy("linucb", {"embedding_dim": -1}, features=feats)


def test_linear_thompson_sampling_without_noise_is_its_posterior_mean():
    """mode = ts with alpha = 0 samples theta from a zero covariance: the posterior mean,
    deterministically (propensity 1), like UCB with alpha = 0."""
    ts = make_policy("linucb", {"mode": "ts", "alpha": 0.0})
    ucb = make_policy("linucb", {"mode": "ucb", "alpha": 0.0})
    s = ts.select(RANKED, 3)
    assert s.items == ucb.select(RANKED, 3).items
    assert s.propensities == [1.0, 1.0, 1.0]


def test_scores_near_the_float_limit_standardise_without_overflow():
    """Retrieval scores of 1e308 (a reranker-less slate) overflowed the z-scores' mean and
    standard deviation into inf/NaN with RuntimeWarnings."""
    import warnings

    from llmrank.explore.policies.base import Request

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        req = Request.make([("a", 1e308), ("b", -1e308), ("c", 0.0)], ExploreContext(), None)
    assert np.all(np.isfinite(req.z)) and req.z[0] > req.z[2] > req.z[1]
    np.testing.assert_allclose(Request.make([("a", 3.0), ("b", 1.0)], ExploreContext(), None).z, [1.0, -1.0])


def test_monte_carlo_marginals_of_different_requests_use_different_draws():
    """``marginals`` (what OPE asks of a target policy, once per logged round) drew every
    request's Monte Carlo sample from one fixed seed: the same noise in every round, so its
    error did not average out over a log. Averaged over many requests, the estimates must
    approach the exact marginals (a cap that never binds forces Monte Carlo here)."""
    ids = [i for i, _ in RANKED]
    feats = ItemFeatures(ids, attributes={"genre": (["g"], np.ones((len(ids), 1), np.float32))})
    exact, method = make_policy("egreedy", {"epsilon": 0.5}).marginals(RANKED, 3)
    assert method == "exact"
    policy = make_policy("egreedy", {"epsilon": 0.5, "mc_samples": 100,
                                     "objectives": {"max_per": {"genre": 10}}}, features=feats)
    runs = [policy.marginals(RANKED, 3, ExploreContext(request_id=f"r{t}")) for t in range(200)]
    assert {m for _, m in runs} == {"mc:100"}
    mean = np.mean([mat for mat, _ in runs], axis=0)
    assert np.abs(mean - exact).max() < 0.02  # one request's own error is ~0.05 per cell
    # one request asked twice is answered the same (the policy does not change)
    again, _ = policy.marginals(RANKED, 3, ExploreContext(request_id="r7"))
    np.testing.assert_array_equal(again, runs[7][0])


def test_a_must_item_listed_twice_is_pinned_once():
    """must = ("i3", "i3") (two rule sources merged, a repeated config line) showed i3 in two
    slots, each with propensity 1: a slate that holds an item twice."""
    for name in ("greedy", "egreedy", "thompson"):
        slate = make_policy(name, {"objectives": {"must": ["i3", "i3"]}}).select(RANKED, 3)
        assert slate.items[0] == "i3" and len(set(slate.items)) == 3
        assert slate.reasons == ["pinned", "policy", "policy"]


@pytest.mark.parametrize("samples", [0, -5])
def test_monte_carlo_needs_at_least_one_sample(samples):
    """mc_samples = 0 logged propensity 1 for every shown Thompson item (the shown draw was
    the only one counted) and made marginals() NaN."""
    with pytest.raises(ConfigError, match="mc_samples"):
        make_policy("thompson", {"mc_samples": samples})
