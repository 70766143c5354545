"""Off-policy evaluation of slate policies from logged impressions: IPS, SNIPS, doubly robust
(and the direct method), with bootstrap confidence intervals.

Model: the item-position model (Li et al. 2018, "Offline evaluation of ranking policies with
click models"): the reward of slot p depends only on the context, the item shown there and p.
The value of a policy is the expected total reward of its slate,
    V(pi) = E_x sum_p sum_a pi(a at p | x) q(x, a, p),
and with per-position marginal propensities pi0(a at p | x) logged for the shown items
    IPS  = 1/N sum_n sum_p r_np w_np,                w_np = pi(a_np at p | x_n) / pi0(a_np at p | x_n)
    SNIPS = sum_p (sum_n r_np w_np) / (sum_n w_np)   (each position's weights average 1;
            w_np = 1 where round n's slate has no slot p: neither policy shows anything there)
    DR   = 1/N sum_n [ sum_p sum_a pi(a at p | x_n) qhat(x_n, a, p) + sum_p w_np (r_np - qhat(x_n, a_np, p)) ]
IPS and DR are unbiased when pi0 > 0 wherever pi > 0; DR's reward model qhat is fitted on the
other folds (cross-fitting) so that its errors do not correlate with the round it corrects.
Confidence intervals: percentile bootstrap over rounds."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from llmrank.explore.base import ExploreContext, Policy

ESTIMATORS = ("ips", "snips", "dr", "dm")

log = logging.getLogger(__name__)


@dataclass
class LoggedRound:
    """One logged impression as OPE sees it: the candidates with their ranker scores, the shown
    slate as candidate indices, the logging propensities and the observed rewards per slot."""

    candidates: list[str]
    scores: np.ndarray
    shown: np.ndarray  # (K,) candidate indices
    propensities: np.ndarray  # (K,)
    rewards: np.ndarray  # (K,)
    context: ExploreContext = field(default_factory=ExploreContext)
    k: int | None = None  # the slate length the logging policy was asked for (None: K)

    @property
    def requested(self) -> int:
        """What to ask a target policy's marginals for: the logged request's k (caps may
        have shown fewer items, and the policy's plan depends on k), else the shown length."""
        return self.k if self.k is not None else len(self.shown)

    @property
    def ranked(self) -> list[tuple[str, float]]:
        return list(zip(self.candidates, self.scores.tolist(), strict=True))


@dataclass
class Estimate:
    estimator: str
    value: float
    ci_low: float
    ci_high: float
    std_err: float
    n: int
    ess: float  # effective sample size of the importance weights (Kish), per position mean

    def covers(self, truth: float) -> bool:
        return bool(self.ci_low <= truth <= self.ci_high)


@dataclass
class OPEData:
    """Arrays over N rounds and K slots (mask marks real slots)."""

    rewards: np.ndarray  # (N, K)
    weights: np.ndarray  # (N, K) target / logging propensity of the shown item at its slot
    mask: np.ndarray  # (N, K)
    dm: np.ndarray  # (N,) direct-method value of the target per round (0 without a model)
    q_shown: np.ndarray  # (N, K) reward-model prediction for the shown item at its slot


TargetFn = Callable[[LoggedRound, int], np.ndarray]  # (round, K) -> (K, n) marginals
RewardFn = Callable[[LoggedRound, int], np.ndarray]  # (round, K) -> (K, n) predicted reward


def policy_target(policy: Policy) -> TargetFn:
    """The target marginals of a (frozen) policy: its ``marginals`` on the logged candidates.
    A must-show item that is not among a round's logged candidates is left out (no log can
    say what it would have earned), so the matrix has one column per logged candidate."""

    def target(rnd: LoggedRound, k: int) -> np.ndarray:
        ctx = replace(rnd.context, admit=_logged_only)
        mat, _ = policy.marginals(rnd.ranked, k, ctx)
        return mat

    return target


def _logged_only(item_id: str) -> bool:
    """ExploreContext.admit for OPE: nothing beyond the logged candidates is added."""
    return False


def memoize(fn: TargetFn) -> TargetFn:
    """Compute a target's (or reward model's) matrix once per logged round: the estimators,
    the ground truth and the reports all ask for the same matrices."""
    # the round is kept with its matrix: keyed by id() alone, a freed round's address was
    # reused by a new round, which was then answered with the old round's matrix
    cache: dict[tuple[int, int], tuple[LoggedRound, np.ndarray]] = {}

    def cached(rnd: LoggedRound, k: int) -> np.ndarray:
        key = (id(rnd), k)
        hit = cache.get(key)
        if hit is None or hit[0] is not rnd:
            hit = cache[key] = (rnd, fn(rnd, k))
        return hit[1]

    return cached


def prepare(rounds: Sequence[LoggedRound], target: TargetFn,
            reward_model: RewardFn | None = None) -> OPEData:
    """Evaluate the target's marginals (and the reward model) on every logged round."""
    k_max = max(len(r.shown) for r in rounds)
    n = len(rounds)
    rewards = np.zeros((n, k_max))
    weights = np.zeros((n, k_max))
    mask = np.zeros((n, k_max), dtype=bool)
    dm = np.zeros(n)
    q_shown = np.zeros((n, k_max))
    for i, rnd in enumerate(rounds):
        k = len(rnd.shown)
        pi = target(rnd, rnd.requested)  # (k', n_cand); rows by shown position
        if pi.shape[1] != len(rnd.candidates):
            raise ValueError(f"the target gave marginals over {pi.shape[1]} items for "
                             f"{len(rnd.candidates)} logged candidates")
        props = np.asarray(rnd.propensities, dtype=np.float64)
        if not ((props > 0) & (props <= 1 + 1e-9)).all():
            raise ValueError(f"logged round {i} has propensities {props.tolist()}: a shown item's "
                             "logging propensity must be in (0, 1]")
        slots = np.arange(min(k, pi.shape[0]))
        rewards[i, :k] = rnd.rewards
        mask[i, :k] = True
        weights[i, slots] = pi[slots, rnd.shown[slots]] / rnd.propensities[slots]
        if reward_model is not None:
            q = reward_model(rnd, max(k, pi.shape[0]))
            rows = min(pi.shape[0], q.shape[0])
            dm[i] = float((pi[:rows] * q[:rows]).sum())
            q_shown[i, :k] = q[np.arange(k), rnd.shown]
    return OPEData(rewards, weights, mask, dm, q_shown)


def _contributions(data: OPEData, estimator: str) -> np.ndarray:
    """Per-round terms whose mean is the estimate (for SNIPS: numerators and denominators)."""
    rw = data.rewards * data.weights * data.mask
    if estimator == "ips":
        return np.asarray(rw.sum(1))
    if estimator == "dm":
        return data.dm
    if estimator == "dr":
        return np.asarray(data.dm + (data.weights * (data.rewards - data.q_shown) * data.mask).sum(1))
    raise ValueError(f"estimator must be one of {', '.join(ESTIMATORS)}, got {estimator!r}")


def _snips(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num, den: (B, K) sums over rounds; value per bootstrap replicate."""
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(den > 0, num / den, 0.0)
    return np.asarray(ratio.sum(-1))


def estimate(data: OPEData, estimator: str = "ips", *, n_boot: int = 1000, alpha: float = 0.05,
             seed: int = 0) -> Estimate:
    """Point estimate and (1 - alpha) percentile-bootstrap interval over rounds."""
    n = len(data.rewards)
    rng = np.random.default_rng(seed)
    boots = np.empty(n_boot)
    chunk = max(1, min(n_boot, 2_000_000 // max(n, 1)))
    w = data.weights * data.mask
    # a round whose slate is shorter than slot p earns 0 there under both policies: its weight
    # there is 1 (in SNIPS' normaliser and the ESS), or slot p is averaged over long slates only
    den = np.where(data.mask, data.weights, 1.0)
    ess = float(np.mean([(den[:, p].sum() ** 2) / max((den[:, p] ** 2).sum(), 1e-300)
                         for p in range(den.shape[1])]))
    if estimator == "snips":
        num_r = data.rewards * w
        value = float(_snips(num_r.sum(0)[None], den.sum(0)[None])[0])
        for start in range(0, n_boot, chunk):
            idx = rng.integers(0, n, size=(min(chunk, n_boot - start), n))
            boots[start: start + len(idx)] = _snips(num_r[idx].sum(1), den[idx].sum(1))
    else:
        c = _contributions(data, estimator)
        value = float(c.mean())
        for start in range(0, n_boot, chunk):
            idx = rng.integers(0, n, size=(min(chunk, n_boot - start), n))
            boots[start: start + len(idx)] = c[idx].mean(1)
    lo, hi = np.quantile(boots, [alpha / 2, 1 - alpha / 2])
    return Estimate(estimator, value, float(lo), float(hi), float(boots.std(ddof=1)), n, ess)


def evaluate(rounds: Sequence[LoggedRound], target: TargetFn, *,
             reward_model: RewardFn | None = None, estimators: Sequence[str] = ESTIMATORS,
             n_boot: int = 1000, seed: int = 0) -> dict[str, Estimate]:
    """All requested estimators for one target policy (dr/dm need a reward model)."""
    data = prepare(rounds, target, reward_model)
    return {e: estimate(data, e, n_boot=n_boot, seed=seed) for e in estimators
            if reward_model is not None or e not in ("dr", "dm")}


def from_store(store: object, *, reward: object = None, policy: str | None = None,
               until: float | None = None) -> tuple[list[LoggedRound], int]:
    """Logged rounds from a FeedbackStore's impressions and events (clicks and high ratings are
    rewards), of impressions logged before ``until`` (leave out those too young to have their
    clicks). Impressions logged without their candidate list cannot be re-scored by another
    policy and are skipped; returns (rounds, skipped). A candidate listed twice is taken once,
    at its first occurrence and with its first score. Impressions without candidate scores
    (an imported log) are kept with every score 0, with a warning: a target policy that
    starts from the ranker's scores is then evaluated without them."""
    from llmrank.feedback.base import FeedbackStore
    from llmrank.feedback.rounds import RewardSpec, rounds

    assert isinstance(store, FeedbackStore)
    spec = reward if isinstance(reward, RewardSpec) else RewardSpec()
    out: list[LoggedRound] = []
    skipped = unscored = 0
    for rnd in rounds(store, reward=spec, policy=policy, until=until):
        imp = rnd.impression
        if not imp.candidates:
            skipped += 1
            continue
        # each candidate once, at its first occurrence (an imported log may list one twice, and
        # a policy refuses a ranked list that does)
        first: dict[str, int] = {}
        for j, c in enumerate(imp.candidates):
            first.setdefault(c, j)
        keep = list(first.values())
        index = {c: i for i, c in enumerate(first)}
        unscored += not imp.candidate_scores
        scores = (np.asarray(imp.candidate_scores, dtype=np.float64)[keep] if imp.candidate_scores
                  else np.zeros(len(keep)))
        ctx = ExploreContext.from_log(imp.user_id, imp.request_id, imp.context)  # with the history
        k = imp.context.get("k")
        out.append(LoggedRound(list(first), scores,
                               np.array([index[i] for i in imp.items]),
                               np.asarray(imp.propensities), np.asarray(rnd.rewards), ctx,
                               k=int(k) if isinstance(k, int) and not isinstance(k, bool) else None))
    if unscored:
        log.warning("%d of %d impressions have no candidate scores: the target policy sees "
                    "every candidate scored 0 there (its ranker prior is not evaluated)",
                    unscored, len(out))
    return out, skipped
