from __future__ import annotations

import numpy as np
import pytest

from llmrank.explore import make_policy
from llmrank.explore.ope import LoggedRound, estimate, evaluate, memoize, policy_target, prepare
from llmrank.explore.reward_model import cross_fit
from llmrank.explore.synthetic import SyntheticWorld


def _hand_rounds():
    # two candidates, one slot; logging uniform (p = 0.5); target always shows candidate 0
    shown = [0, 1, 0, 1]
    rewards = [1.0, 1.0, 0.0, 0.0]
    return [LoggedRound(["a", "b"], np.array([1.0, 0.0]), np.array([s]), np.array([0.5]),
                        np.array([r])) for s, r in zip(shown, rewards, strict=True)]


def _greedy_target(rnd, k):
    out = np.zeros((k, len(rnd.candidates)))
    out[0, 0] = 1.0
    return out


def test_estimators_match_hand_computed_values():
    rounds = _hand_rounds()
    q = {"a": 0.25, "b": 0.75}  # a (wrong) reward model: DR must still correct with the weights

    def model(rnd, k):
        return np.array([[q["a"], q["b"]]])

    data = prepare(rounds, _greedy_target, model)
    # IPS: (1*2 + 0 + 0*2 + 0) / 4 = 0.5
    assert estimate(data, "ips").value == pytest.approx(0.5)
    # SNIPS: sum r w / sum w = 2 / 4 = 0.5
    assert estimate(data, "snips").value == pytest.approx(0.5)
    # DM: 0.25 every round; DR: 0.25 + mean(w (r - q_shown)) = 0.25 + (2*0.75 + 0 + 2*(-0.25) + 0)/4
    assert estimate(data, "dm").value == pytest.approx(0.25)
    assert estimate(data, "dr").value == pytest.approx(0.5)


def test_snips_normalises_each_position_by_its_weights():
    """Weights that do not average 1: SNIPS divides each position's weighted rewards by that
    position's weight sum, and so differs from IPS."""
    # one slot, target always shows candidate 0: weights 2, 4, 0 (mean 2)
    one = [LoggedRound(["a", "b"], np.array([1.0, 0.0]), np.array([s]), np.array([p]), np.array([r]))
           for s, p, r in [(0, 0.5, 1.0), (0, 0.25, 0.0), (1, 0.5, 1.0)]]
    data = prepare(one, _greedy_target)
    assert data.weights[:, 0].tolist() == [2.0, 4.0, 0.0]
    assert estimate(data, "ips", n_boot=50).value == pytest.approx(2 / 3)  # (1*2 + 0 + 0) / 3
    assert estimate(data, "snips", n_boot=50).value == pytest.approx(1 / 3)  # 2 / (2 + 4 + 0)

    # two slots, target shows a then b: per position, not pooled over positions
    def a_then_b(rnd, k):
        out = np.zeros((k, len(rnd.candidates)))
        out[0, 0] = out[1, 1] = 1.0
        return out

    two = [LoggedRound(["a", "b", "c"], np.array([2.0, 1.0, 0.0]), np.array(s), np.array(p), np.array(r))
           for s, p, r in [([0, 1], [0.5, 0.5], [1.0, 1.0]),   # w = 2, 2
                           ([0, 2], [0.25, 0.5], [0.0, 1.0]),  # w = 4, 0
                           ([2, 1], [0.5, 0.5], [1.0, 0.0])]]  # w = 0, 2
    data = prepare(two, a_then_b)
    assert data.weights.tolist() == [[2.0, 2.0], [4.0, 0.0], [0.0, 2.0]]
    ips = estimate(data, "ips", n_boot=50).value
    snips = estimate(data, "snips", n_boot=50)
    assert ips == pytest.approx(4 / 3)  # (2 + 2 + 0 + 0 + 0 + 0) / 3
    assert snips.value == pytest.approx(2 / 6 + 2 / 4)  # slot 0: 2 / 6, slot 1: 2 / 4
    assert snips.value != pytest.approx(ips)
    assert snips.ci_low <= snips.value <= snips.ci_high


@pytest.fixture(scope="module")
def logged():
    world = SyntheticWorld(seed=0)
    logger = make_policy("egreedy", {"epsilon": 0.3, "seed": 0})
    rounds, _, _ = world.run(logger, 2000, seed=1, learn=False)
    return world, rounds, memoize(cross_fit(rounds, world.k))


@pytest.mark.parametrize(("name", "opts"), [("greedy", {}), ("egreedy", {"epsilon": 0.1})])
def test_off_policy_estimates_recover_the_known_value(logged, name, opts):
    """Logs of epsilon-greedy(0.3); targets evaluated against (a) their exact expected value on
    the logged contexts and (b) their value replayed online in the same world."""
    world, rounds, model = logged
    target = memoize(policy_target(make_policy(name, opts)))
    truth = world.true_value(rounds, target)
    _, replayed, _ = world.run(make_policy(name, opts), 2000, seed=2, learn=False, log=False)
    assert abs(replayed - truth) / truth < 0.05
    for est in evaluate(rounds, target, reward_model=model, n_boot=300,
                        estimators=("ips", "snips", "dr")).values():
        assert abs(est.value - truth) / truth < 0.10, est
        assert abs(est.value - replayed) / replayed < 0.10, est
        assert est.covers(truth), est
        assert est.ci_high - est.ci_low < 0.3 * truth


def test_ips_of_the_logging_policy_is_its_on_policy_mean(logged):
    """With target = logger every weight is 1: IPS equals the plain mean reward."""
    _, rounds, _ = logged
    est = evaluate(rounds, policy_target(make_policy("egreedy", {"epsilon": 0.3})),
                   estimators=("ips",), n_boot=100)["ips"]
    assert est.value == pytest.approx(np.mean([r.rewards.sum() for r in rounds]))
    assert est.ess == pytest.approx(len(rounds))


def test_rounds_from_a_store_keep_the_logged_context(tmp_path):
    """from_store rebuilds each round's context (segment, history, a given user vector) from
    the impression, so a target policy is evaluated in the context the slate was shown in."""
    from llmrank.explore.base import ExploreContext
    from llmrank.explore.ope import from_store
    from llmrank.feedback.sqlite_store import SqliteFeedbackStore

    store = SqliteFeedbackStore(tmp_path / "fb.sqlite")
    pol = make_policy("egreedy", {"seed": 0})
    ctx = ExploreContext(user_id="u1", history=["h1", "h2"], segment="s", request_id="r1",
                         user_vector=np.array([0.5, -0.5]))
    slate = pol.select([("a", 2.0), ("b", 1.0), ("c", 0.0)], 2, ctx)
    store.log_impression(slate.impression("r1", "u1", context=ctx.to_log()))
    (rnd,), skipped = from_store(store)
    assert skipped == 0 and rnd.context.history == ["h1", "h2"] and rnd.context.segment == "s"
    assert rnd.context.user_vector is not None and rnd.context.user_vector.tolist() == [0.5, -0.5]


@pytest.mark.parametrize("n", [1, 2, 3])
def test_a_tiny_log_has_no_reward_model_for_an_empty_fold(n):
    """A log too small for every cross-fitting fold to have other rounds: those rounds get
    no prediction (0, so DR is IPS there) instead of a crash on an empty fit."""
    rounds = _hand_rounds()[:n]
    model = cross_fit(rounds, 1)
    for rnd in rounds:
        q = model(rnd, 1)
        assert q.shape == (1, 2) and np.isfinite(q).all()
    est = evaluate(rounds, _greedy_target, reward_model=model, n_boot=20)
    assert all(np.isfinite(e.value) for e in est.values())
    if n == 1:
        assert est["dm"].value == 0.0 and est["dr"].value == est["ips"].value


def test_a_target_pinning_an_item_the_log_never_offered_is_evaluated_on_the_logged_candidates():
    """A target's must-show item that is not among the logged candidates cannot be scored
    from the log: it is left out and the target's matrix keeps one column per candidate."""
    target = policy_target(make_policy("greedy", {"objectives": {"must": ["zz", "b"]}}))
    rounds = _hand_rounds()
    assert target(rounds[0], 1).tolist() == [[0.0, 1.0]]  # b, the logged must item, is pinned
    est = evaluate(rounds, target, estimators=("ips",), n_boot=20)
    assert est["ips"].value == pytest.approx(0.5)  # b shown in rounds 1 and 3: (1 * 2 + 0) / 4


def test_prepare_refuses_marginals_over_other_items():
    with pytest.raises(ValueError, match="3 items for 2 logged candidates"):
        prepare(_hand_rounds(), lambda rnd, k: np.zeros((k, 3)))


@pytest.mark.parametrize("bad", [0.0, 1.5, float("nan")])
def test_a_logged_propensity_outside_0_1_is_refused(bad):
    """A shown item's logging propensity must be a probability > 0: 0 would make IPS
    infinite (and NaN for a zero reward), > 1 is no probability; both point at a broken log."""
    rounds = _hand_rounds()
    rounds[2].propensities = np.array([bad])
    with pytest.raises(ValueError, match="propensit"):
        prepare(rounds, _greedy_target)


def test_snips_of_the_logging_policy_on_slates_of_different_lengths_is_the_on_policy_mean():
    """Rounds with fewer slots (fewer candidates than k) show nothing at the later positions,
    and neither would the target: such a round weighs 1 in a position's normaliser (it earned
    the 0 the target would earn there), not 0, or SNIPS averages the later positions over the
    long slates only and overestimates. With target = logger every weight is 1, so SNIPS must
    equal IPS and the plain mean total reward."""
    def logger(rnd, k):  # the logged slate, deterministically: every weight is 1
        out = np.zeros((k, len(rnd.candidates)))
        out[np.arange(k), rnd.shown] = 1.0
        return out

    one = np.array([1.0])
    rounds = [LoggedRound(["a", "b"], np.array([1.0, 0.0]), np.array([0, 1]), np.ones(2), np.array([1.0, 1.0])),
              LoggedRound(["a"], one, np.array([0]), one, np.array([0.0])),
              LoggedRound(["a"], one, np.array([0]), one, np.array([0.0])),
              LoggedRound(["a"], one, np.array([0]), one, np.array([1.0]))]
    data = prepare(rounds, logger)
    mean = np.mean([r.rewards.sum() for r in rounds])  # (2 + 0 + 0 + 1) / 4
    assert estimate(data, "ips", n_boot=20).value == pytest.approx(mean)
    snips = estimate(data, "snips", n_boot=50)
    assert snips.value == pytest.approx(mean)  # slot 0: 2 / 4, slot 1: 1 / 4 (was 1 / 1)
    assert snips.ci_low <= snips.value <= snips.ci_high
    assert snips.ess == pytest.approx(len(rounds))  # every weight 1: each slot's ESS is N (was 2.5)


def test_memoize_never_answers_for_a_round_that_was_freed():
    """The cache was keyed by id(round) alone: once a round was garbage-collected, a new round
    at the same address got the old round's matrix (here 48 of 50 rounds built one after the
    other were answered with a previous round's values)."""
    calls = []

    def target(rnd, k):
        calls.append(1)
        return np.array([[float(rnd.rewards[0])]])

    cached = memoize(target)
    for i in range(50):
        rnd = LoggedRound(["a"], np.array([0.0]), np.array([0]), np.array([1.0]), np.array([float(i)]))
        assert cached(rnd, 1)[0, 0] == i
        assert cached(rnd, 1)[0, 0] == i  # and a round still alive is computed once
        del rnd
    assert len(calls) == 50


def test_a_logged_candidate_list_naming_an_item_twice_is_evaluated_on_its_first_occurrences(tmp_path):
    """An imported impression may list a candidate twice (the record allows it); every policy
    refuses such a ranked list, so one such impression made from_store's rounds crash the
    whole evaluation. The candidates are taken once each, first occurrence and its score
    first, as the recommender dedupes the candidates it ranks."""
    from llmrank.explore.ope import from_store
    from llmrank.feedback import FeedbackEvent, Impression
    from llmrank.feedback.sqlite_store import SqliteFeedbackStore

    store = SqliteFeedbackStore(tmp_path / "fb.sqlite")
    store.log_many([Impression("r1", "u1", ("b", "a"), (0.5, 1.0), (0.5, 0.5), "ext", timestamp=1.0,
                               candidates=("a", "b", "a", "c"), candidate_scores=(1.0, 0.5, 0.2, 0.0))],
                   [FeedbackEvent("u1", "a", "click", request_id="r1", timestamp=2.0)])
    (rnd,), skipped = from_store(store)
    assert skipped == 0 and rnd.candidates == ["a", "b", "c"] and rnd.scores.tolist() == [1.0, 0.5, 0.0]
    assert rnd.shown.tolist() == [1, 0] and rnd.rewards.tolist() == [0.0, 1.0]
    est = evaluate([rnd], policy_target(make_policy("greedy")), estimators=("ips",), n_boot=10)
    assert est["ips"].value == pytest.approx(0.0)  # greedy shows a, b: neither where it was logged


def test_rounds_without_candidate_scores_are_kept_with_a_warning(tmp_path, caplog):
    """An imported log without candidate scores was evaluated as if the ranker had scored
    every candidate 0, without a word: a score-based target policy is then not the live one."""
    from llmrank.explore.ope import from_store
    from llmrank.feedback import Impression
    from llmrank.feedback.sqlite_store import SqliteFeedbackStore

    store = SqliteFeedbackStore(tmp_path / "fb.sqlite")
    store.log_impression(Impression("r1", "u1", ("a", "b"), (2.0, 1.0), (0.5, 0.5), "imported",
                                    timestamp=1.0, candidates=("a", "b", "c")))
    (rnd,), skipped = from_store(store)
    assert skipped == 0 and rnd.scores.tolist() == [0.0, 0.0, 0.0]
    assert "no candidate scores" in caplog.text


def test_ope_asks_the_target_for_the_slate_length_the_logger_was_asked_for(tmp_path):
    """Caps can show fewer items than asked (k = 4, 3 shown), and a policy's marginals per
    shown position depend on k (under k = 4 the cold item is at position 2 only when the caps
    cut the slate short): OPE asked the target for len(shown) and divided marginals of another
    plan by the logged propensities. The impression now records k; evaluating the logging
    policy on its own log weighs the shown items 1 (up to Monte Carlo error)."""
    from test_objectives import _short_slate_policy

    from llmrank.explore.base import ExploreContext
    from llmrank.explore.ope import from_store, policy_target, prepare
    from llmrank.feedback.sqlite_store import SqliteFeedbackStore

    policy, ranked = _short_slate_policy("egreedy", -1, 2, epsilon=0.5, mc_samples=4000)
    state = policy.budget.shown.copy()
    store = SqliteFeedbackStore(tmp_path / "fb.sqlite")
    for n in range(50):  # a slate the caps cut short
        policy.budget.shown = state.copy()
        slate = policy.select(ranked, 4, ExploreContext(user_id="u1", request_id=f"r{n}"))
        if len(slate.items) == 3:
            break
    assert len(slate.items) == 3 and slate.k == 4 and slate.reasons[-1] == "cold-start"
    store.log_impression(slate.impression(f"r{n}", "u1"))
    (rnd,), skipped = from_store(store)
    assert skipped == 0 and rnd.k == 4 and rnd.requested == 4
    policy.budget.shown = state.copy()  # the state the slate was selected in
    data = prepare([rnd], policy_target(policy))
    np.testing.assert_allclose(data.weights[0, :3], 1.0, atol=0.15)
