"""Exact per-position marginals of a Plackett-Luce (softmax without replacement) slate.

P(item i at position p) sums over all ordered prefixes, n!/(n-p)! terms: hopeless for 100
candidates. The exponential-race view makes it a one-dimensional integral: sampling PL with
weights w is ordering independent arrival times T_j ~ Exp(w_j), so

    P(i at position p) = integral_0^inf  w_i exp(-w_i t) * PB_{-i}(p; t) dt

where PB_{-i}(p; t) is the Poisson-binomial probability that exactly p of the other items
arrived before t (each with probability 1 - exp(-w_j t)). We integrate in s = log t with the
trapezoid rule, which converges geometrically for this smooth, doubly-exponentially decaying
integrand. The discretisation error grows with n (a product of n factors bounds it); measured
against h = 0.05: at h = 0.4 it reaches 3e-6 for 60 items, at h = 0.25 it stays below 5e-11 up
to 200 items, so h = 0.25. Starting the integral at t = 1e-10 adds a truncation error near
1e-9. PB_{-i} for all i comes at
once from prefix and suffix products truncated at k terms: O(nodes * n * k^2) work, a few
milliseconds for 20 candidates, ~15 ms for 100 candidates and k = 10. ``enumerate_marginals`` is the brute-force
reference used in tests."""

from __future__ import annotations

import itertools

import numpy as np

LOGIT_RANGE = 50.0  # logits are clipped to [max - 50, max]: callers sample with the same clip
_STEP = 0.25
_T_LO = 1e-10


def clip_logits(logits: np.ndarray) -> np.ndarray:
    """The logits the sampler and the marginals both use: every item keeps P >= ~e^-50."""
    logits = np.asarray(logits, dtype=np.float64)
    if logits.size == 0:  # every candidate filtered out: nothing to sample
        return logits
    return np.maximum(logits, logits.max() - LOGIT_RANGE)


def pl_marginals(logits: np.ndarray, k: int) -> np.ndarray:
    """(min(k, n), n) matrix of P(item j at position p) for PL over ``clip_logits(logits)``."""
    z = clip_logits(logits)
    n = len(z)
    k = min(k, n)
    if n == 1:
        return np.ones((1, 1))
    w = np.exp(z - z.max())  # max weight 1
    s_hi = np.log(40.0 / w.min())
    s = np.arange(np.log(_T_LO), s_hi + _STEP, _STEP)
    t = np.exp(s)  # (Q,)
    q = -np.expm1(-np.outer(w, t))  # (n, Q): P(item j arrived before t)
    Q = len(t)
    # prefix[j] = distribution (truncated to k terms) of arrivals among items < j
    prefix = np.zeros((n + 1, Q, k))
    prefix[0, :, 0] = 1.0
    for j in range(n):
        prefix[j + 1] = _add_item(prefix[j], q[j])
    suffix = np.zeros((n + 1, Q, k))
    suffix[n, :, 0] = 1.0
    for j in range(n - 1, -1, -1):
        suffix[j] = _add_item(suffix[j + 1], q[j])
    # leave-one-out: PB_{-i}(p) = sum_a prefix[i](a) * suffix[i+1](p - a)
    pre, suf = prefix[:n], suffix[1:]
    loo = np.zeros((n, Q, k))
    for p in range(k):
        for a in range(p + 1):
            loo[:, :, p] += pre[:, :, a] * suf[:, :, p - a]
    density = w[:, None] * t[None, :] * np.exp(-np.outer(w, t))  # (n, Q): w_i t e^{-w_i t}
    out = _STEP * np.einsum("iq,iqp->pi", density, loo)
    return np.asarray(np.clip(out, 0.0, 1.0))


def _add_item(dist: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Convolve a count distribution (Q, k) with one Bernoulli(q) item, truncated at k."""
    out = dist * (1.0 - q)[:, None]
    out[:, 1:] += dist[:, :-1] * q[:, None]
    return out


def enumerate_marginals(logits: np.ndarray, k: int) -> np.ndarray:
    """Brute force over all ordered k-prefixes (tests only; n!/(n-k)! terms)."""
    z = clip_logits(logits)
    w = np.exp(z - z.max())
    n = len(w)
    k = min(k, n)
    out = np.zeros((k, n))
    for prefix in itertools.permutations(range(n), k):
        prob, rest = 1.0, set(range(n))
        for j in prefix:
            prob *= w[j] / sum(w[r] for r in rest)  # no running subtraction: it cancels
            rest.discard(j)
        for p, j in enumerate(prefix):
            out[p, j] += prob
    return out


def sample_rankings(logits: np.ndarray, m: int, rng: np.random.Generator) -> np.ndarray:
    """(m, n) Gumbel-perturbed logits: ordering each row descending is one PL sample."""
    z = clip_logits(logits)
    return z[None, :] + rng.gumbel(size=(m, len(z)))
