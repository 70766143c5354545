"""The multi-objective step: how a slate is assembled from per-candidate index values.

Every policy reduces to "draw one index value per candidate" (the ranker score for greedy, a
posterior sample for Thompson sampling, a Gumbel-perturbed logit for softmax, a UCB for
LinUCB). The slate is then built greedily from those values, position by position, trading
relevance for:

* diversity (MMR, Carbonell & Goldstein 1998): minus the max cosine similarity of the item's
  embedding to items already placed;
* novelty: the item's self-information -log2 p(i), mixed into relevance;
* calibration (Steck 2018): minus KL(p || q~) between the user's genre mix p and the mix q of
  the slate so far plus the item, with q~ = (1 - alpha) q + alpha p;
* hard rules: must-not items and attribute values are never shown, no attribute value appears
  more than ``max_per`` times, must items are pinned on top (done by the policy base).

The gain of candidate i at each step is
    (1 - diversity - calibration) * rel_i - diversity * maxsim_i - calibration * KL_i
with rel the values min-max normalised per draw (mixed with novelty). With all weights zero and
no rules this is plain top-k by value, which is what lets policies report exact propensities;
anything else is handled by Monte Carlo over draws. The code is vectorised over draws so the
Monte Carlo estimate costs a few array operations per position."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from llmrank.explore.features import ItemFeatures


@dataclass
class ObjectivesConfig:
    diversity: float = 0.0
    novelty: float = 0.0
    calibration: float = 0.0
    calibration_attribute: str = "genre"
    calibration_alpha: float = 0.01
    must: tuple[str, ...] = ()  # pinned on top in this order (added if not retrieved, if admitted)
    must_not: tuple[str, ...] = ()
    deny: Mapping[str, Sequence[str]] = field(default_factory=dict)  # attribute -> values
    max_per: Mapping[str, int] = field(default_factory=dict)  # attribute -> max per value

    def __post_init__(self) -> None:
        from llmrank.errors import ConfigError

        for name in ("diversity", "novelty", "calibration"):
            v = getattr(self, name)
            if not 0.0 <= v < 1.0:
                raise ConfigError(f"objectives.{name} must be in [0, 1), got {v}")
        if self.diversity + self.calibration >= 1.0:
            raise ConfigError("objectives.diversity + objectives.calibration must be < 1")
        # a lone string is iterable: it would be read letter by letter and the rule lost
        for name, value in (("must", self.must), ("must_not", self.must_not),
                            *((f"deny.{a}", v) for a, v in self.deny.items())):
            if isinstance(value, str):
                raise ConfigError(f"objectives.{name} must be a list, got the string {value!r}")
        self.must = tuple(dict.fromkeys(self.must))  # an item listed twice is pinned once
        self.must_not = tuple(self.must_not)
        both = sorted(set(self.must) & set(self.must_not))
        if both:
            raise ConfigError(f"objectives: {', '.join(map(repr, both))} in both must and must_not")

    @property
    def reorders(self) -> bool:
        """True when the slate is not plain top-k by value."""
        return bool(self.diversity or self.novelty or self.calibration or self.max_per)


@dataclass
class AssemblyInputs:
    """Per-request arrays over the candidate list (n candidates)."""

    sim: np.ndarray | None = None  # (n, n) cosine similarity
    novelty: np.ndarray | None = None  # (n,) in [0, 1]
    cal_rows: np.ndarray | None = None  # (n, G) p(g | item)
    cal_target: np.ndarray | None = None  # (G,) p(g | user)
    caps: list[tuple[np.ndarray, int]] = field(default_factory=list)  # (n, V) 0/1, limit

    @classmethod
    def build(cls, cfg: ObjectivesConfig, features: ItemFeatures | None, codes: np.ndarray,
              history: Sequence[str]) -> AssemblyInputs:
        out = cls()
        if features is None:
            return out
        if cfg.diversity:
            emb = features.embedding_rows(codes)
            if emb is not None:
                out.sim = emb @ emb.T
        if cfg.novelty:
            nov = features.novelty(codes)
            if nov is not None:
                span = nov.max() - nov.min()
                out.novelty = (nov - nov.min()) / span if span > 0 else np.zeros_like(nov)
        if cfg.calibration:
            rows = features.attribute_rows(cfg.calibration_attribute, codes)
            target = features.distribution(cfg.calibration_attribute, history)
            if rows is not None and target is not None:
                out.cal_rows = rows / np.maximum(rows.sum(1, keepdims=True), 1.0)
                out.cal_target = target
        for attr, limit in cfg.max_per.items():
            rows = features.attribute_rows(attr, codes)
            if rows is not None:
                out.caps.append(((rows > 0).astype(np.float64), int(limit)))
        return out


def eligible_mask(cfg: ObjectivesConfig, features: ItemFeatures | None, items: Sequence[str],
                  codes: np.ndarray) -> np.ndarray:
    """False for candidates a hard rule forbids (must_not ids, denied attribute values)."""
    banned = set(cfg.must_not)
    mask = np.array([i not in banned for i in items], dtype=bool) if banned else np.ones(len(items), bool)
    if features is not None:
        for attr, values in cfg.deny.items():
            if attr not in features.attributes:
                continue
            names, _ = features.attributes[attr]
            cols = [names.index(v) for v in values if v in names]
            rows = features.attribute_rows(attr, codes)
            if cols and rows is not None:
                mask &= rows[:, cols].sum(1) == 0
    return mask


def check_must(cfg: ObjectivesConfig, features: ItemFeatures | None) -> None:
    """ConfigError when a must item is one the hard rules forbid: a denied attribute value,
    or more must items of one value than its ``max_per`` cap. Pinned items bypass the rules,
    so such a pair of rules showed the forbidden item; like an item in both must and must_not,
    the contradiction is refused, not guessed. Items the features do not know pass."""
    from llmrank.errors import ConfigError

    if features is None or not cfg.must:
        return
    codes = features.codes(cfg.must)
    for attr, values in cfg.deny.items():
        rows = features.attribute_rows(attr, codes)
        if rows is None:
            continue
        names = features.attributes[attr][0]
        for item, row in zip(cfg.must, rows, strict=True):
            bad = [v for v in values if v in names and row[names.index(v)] > 0]
            if bad:
                raise ConfigError(f"objectives: must item {item!r} has {attr} {bad[0]!r}, which "
                                  f"objectives.deny.{attr} forbids")
    for attr, limit in cfg.max_per.items():
        rows = features.attribute_rows(attr, codes)
        if rows is None:
            continue
        counts = (rows > 0).sum(0)
        over = np.flatnonzero(counts > limit)
        if len(over):
            value = features.attributes[attr][0][int(over[0])]
            raise ConfigError(f"objectives: {int(counts[over[0]])} must items have {attr} {value!r}, "
                              f"over objectives.max_per.{attr} = {limit}")


def assemble(values: np.ndarray, eligible: np.ndarray, k: int, cfg: ObjectivesConfig,
             inputs: AssemblyInputs, placed: Sequence[int] = ()) -> np.ndarray:
    """(m, k') candidate indices per draw, k' = min(k, eligible count). ``placed`` are
    candidates already shown above (pinned), counted by diversity, calibration and caps. When
    ``max_per`` caps leave no admissible item, the rest of that draw's row is -1 (a shorter
    slate: hard rules are never broken to fill a slot)."""
    values = np.atleast_2d(np.asarray(values, dtype=np.float64))
    m = values.shape[0]
    k = min(k, int(eligible.sum()))
    if k <= 0:
        return np.zeros((m, 0), np.int64)
    if not cfg.reorders:
        masked = np.where(eligible[None, :], values, -np.inf)
        return np.argsort(-masked, axis=1, kind="stable")[:, :k]
    return _greedy(values, eligible, k, cfg, inputs, list(placed))


def _normalise(values: np.ndarray, eligible: np.ndarray) -> np.ndarray:
    v = np.where(eligible[None, :], values, np.nan)
    lo = np.nanmin(v, axis=1, keepdims=True)
    hi = np.nanmax(v, axis=1, keepdims=True)
    span = np.where(hi > lo, hi - lo, 1.0)
    return np.nan_to_num((v - lo) / span, nan=0.0)


def _greedy(values: np.ndarray, eligible: np.ndarray, k: int, cfg: ObjectivesConfig,
            inputs: AssemblyInputs, placed: list[int]) -> np.ndarray:
    """Fill the slate position by position, in every draw at once: at each position pick
    the admissible candidate with the largest gain, then add it to the slate's context."""
    m, n = values.shape
    rows = np.arange(m)
    rel = _relevance(values, eligible, cfg, inputs)
    slate = _SlateContext.empty(m, n, cfg, inputs)
    for j in placed:  # pinned items shape the context of everything below them
        slate.add(j)
    taken = np.zeros((m, n), dtype=bool)
    out = np.zeros((m, k), np.int64)
    for pos in range(k):
        gain = slate.gain(rel, len(placed) + pos, cfg)
        ok = eligible[None, :] & ~taken & ~slate.over_caps()
        pick = np.argmax(np.where(ok, gain, -np.inf), axis=1)
        # caps are hard: a draw whose caps leave nothing ends its slate here (-1 = empty)
        out[:, pos] = np.where(ok.any(1), pick, -1)
        taken[rows, pick] = True
        slate.add(pick)
    return out


def _relevance(values: np.ndarray, eligible: np.ndarray, cfg: ObjectivesConfig,
               inputs: AssemblyInputs) -> np.ndarray:
    """(m, n) values min-max normalised per draw (so weights mean the same for any ranker
    scale), mixed with novelty when that objective is on."""
    rel = _normalise(values, eligible)
    if cfg.novelty and inputs.novelty is not None:
        rel = (1.0 - cfg.novelty) * rel + cfg.novelty * inputs.novelty[None, :]
    return rel


@dataclass
class _Calibration:
    """The calibration objective's inputs and the genre mass placed so far."""

    rows: np.ndarray  # (n, G) p(g | item)
    target: np.ndarray  # (G,) p(g | user)
    placed: np.ndarray  # (m, G) sum of the rows of the items placed so far


@dataclass
class _SlateContext:
    """What the items placed so far mean for each candidate, per draw: their max similarity
    (diversity), their genre mix (calibration) and their counts per capped value. An
    objective whose inputs are missing is off (its part stays None or empty)."""

    maxsim: np.ndarray  # (m, n); -inf until something is placed
    sim: np.ndarray | None  # (n, n) when diversity is on
    cal: _Calibration | None
    caps: list[tuple[np.ndarray, np.ndarray, int]]  # (counts (m, V), rows (n, V), limit)

    @classmethod
    def empty(cls, m: int, n: int, cfg: ObjectivesConfig, inputs: AssemblyInputs) -> _SlateContext:
        """Nothing placed yet; only the objectives that are on and have inputs take part."""
        sim = inputs.sim if cfg.diversity > 0 else None
        cal = None
        if cfg.calibration > 0 and inputs.cal_rows is not None and inputs.cal_target is not None:
            cal = _Calibration(inputs.cal_rows, inputs.cal_target, np.zeros((m, inputs.cal_rows.shape[1])))
        caps = [(np.zeros((m, a.shape[1])), a, limit) for a, limit in inputs.caps]
        return cls(np.full((m, n), -np.inf), sim, cal, caps)

    def add(self, idx: int | np.ndarray) -> None:
        """Place candidate ``idx``: one index for every draw (pinned) or one per draw."""
        if self.sim is not None:
            self.maxsim = np.maximum(self.maxsim, self.sim[idx])
        if self.cal is not None:
            self.cal.placed += self.cal.rows[idx]
        for counts, a, _ in self.caps:
            counts += a[idx]

    def gain(self, rel: np.ndarray, size: int, cfg: ObjectivesConfig) -> np.ndarray:
        """(m, n) gain of each candidate at the next position, ``size`` items placed."""
        gain = (1.0 - cfg.diversity - cfg.calibration) * rel
        if self.sim is not None:
            gain = gain - cfg.diversity * np.where(np.isfinite(self.maxsim), self.maxsim, 0.0)
        if self.cal is not None:
            gain = gain - cfg.calibration * _kl_if_added(self.cal.placed, self.cal.rows, self.cal.target,
                                                         size, cfg.calibration_alpha)
        return gain

    def over_caps(self) -> np.ndarray:
        """(m, n) True where a candidate has a value whose cap is already full."""
        blocked = np.zeros(self.maxsim.shape, dtype=bool)
        for counts, a, limit in self.caps:
            blocked |= ((counts >= limit).astype(np.float64) @ a.T) > 0
        return blocked


def _kl_if_added(cal_sum: np.ndarray, cal_rows: np.ndarray, target: np.ndarray, size: int,
                 alpha: float) -> np.ndarray:
    """(m, n): KL(p || q~) of the slate so far plus candidate i (Steck 2018, eq. 4)."""
    q = (cal_sum[:, None, :] + cal_rows[None, :, :]) / (size + 1)
    q = (1.0 - alpha) * q + alpha * target[None, None, :]
    p = target[None, None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p / np.maximum(q, 1e-12)), 0.0)
    return np.asarray(terms.sum(-1))
