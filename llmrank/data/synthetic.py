"""Synthetic users and timestamped interactions over a catalog, deterministic under a seed.

The embedded demo needs behaviour with learnable structure, not uniform noise, so that a
retriever, a sequential model and a reranker each have something to find:

- tastes: each user mixes a few genres (a sparse Dirichlet draw) and drifts linearly
  toward a second mix over their history, so recent items predict better than old ones;
- popularity: a Zipf-like base popularity skews choices toward a head of items;
- sequences: series must be watched in order, and after part k a user usually continues
  with part k+1 soon, so "what comes next" is partly predictable from the last item;
- ratings: higher for items closer to the user's current taste, with noise.

All randomness comes from one ``numpy.random.Generator`` in a fixed order and no BLAS call
is involved, so the same seed gives the same data on every machine."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from llmrank.data.columns import EventColumns
from llmrank.data.dataset import Dataset
from llmrank.records import Item, User

log = logging.getLogger(__name__)
DAY = 86_400


@dataclass(frozen=True)
class SyntheticConfig:
    """Knobs of the generator; the defaults give ~300 users x ~24 events over 200 items."""

    n_users: int = 300
    seed: int = 0
    mean_history: float = 24.0
    min_history: int = 5
    max_history: int = 120
    sequel_prob: float = 0.7  # chance that the next event continues an unfinished series
    drift: float = 1.0  # 0: fixed tastes; 1: fully at the second taste by the last event
    popularity_exponent: float = 1.0
    taste_strength: float = 4.0  # weight of taste against popularity in the choice
    start: int = 1_577_836_800  # 2020-01-01 UTC
    span_days: int = 730


def generate_interactions(items: Sequence[Item], config: SyntheticConfig = SyntheticConfig(),
                          *, name: str = "synthetic") -> Dataset:
    """A Dataset of synthetic users interacting with ``items``. Series are read from the
    ``series`` and ``part`` attributes of the items (absent: no series)."""
    if not items:
        raise ValueError("cannot generate interactions without items")
    if config.min_history < 1 or config.max_history < config.min_history:
        raise ValueError("need 1 <= min_history <= max_history")
    rng = np.random.default_rng(config.seed)
    world = _World.build(items, config, rng)
    events = EventColumns()
    width = len(str(config.n_users))
    users = [_simulate_user(f"u{u + 1:0{width}d}", world, config, rng, events) for u in range(config.n_users)]
    ds = Dataset.from_arrays(name, items, users, *events.arrays())
    log.info("synthetic %s: %d users, %d items, %d interactions (seed %d)",
             name, ds.n_users, ds.n_items, len(ds.interactions), config.seed)
    return ds


@dataclass(frozen=True)
class _World:
    """What every simulated user shares: the items' genre mix, base popularity and series."""

    items: Sequence[Item]
    genres: list[str]
    membership: np.ndarray  # (n, G), each row the item's genres with equal weight
    popularity: np.ndarray  # (n,) Zipf-like over a random order of the items
    has_prev: np.ndarray  # (n,) the item is a later part of a series
    next_part: np.ndarray  # (n,) index of the next part of its series, -1: none

    @classmethod
    def build(cls, items: Sequence[Item], config: SyntheticConfig, rng: np.random.Generator) -> _World:
        """Takes the generator because the popularity order is its first draw: the order of
        draws is what makes a seed give the same data everywhere."""
        n = len(items)
        genres = sorted({g for it in items for g in it.genres}) or ["all"]
        gindex = {g: k for k, g in enumerate(genres)}
        membership = np.zeros((n, len(genres)))
        for i, it in enumerate(items):
            for g in it.genres or ("all",):
                if g in gindex:
                    membership[i, gindex[g]] = 1.0
        membership /= np.maximum(membership.sum(axis=1, keepdims=True), 1.0)
        popularity = 1.0 / np.power(rng.permutation(n) + 1.0, config.popularity_exponent)
        prev_part, next_part = _series_links(items)
        return cls(items, genres, membership, popularity, prev_part >= 0, next_part)


def _simulate_user(uid: str, world: _World, config: SyntheticConfig, rng: np.random.Generator,
                   events: EventColumns) -> User:
    """One user: a history length and two taste mixes, then one event per step, either the
    next part of a series they are in (usually, and soon) or an item drawn by taste drifting
    from the first mix to the second and popularity. Appends the events; returns the user."""
    n = len(world.items)
    sigma = 0.6
    draw = round(float(rng.lognormal(np.log(config.mean_history) - sigma**2 / 2, sigma)))
    length = max(config.min_history, min(draw, config.max_history, n))
    taste0 = rng.dirichlet(np.full(len(world.genres), 0.3))
    taste1 = rng.dirichlet(np.full(len(world.genres), 0.3))
    user = User(uid, {"favourite_genre": world.genres[int(np.argmax(taste0))]})
    # affinity is linear in the taste, so the drifting mix is a blend of two vectors
    aff0 = (world.membership * taste0).sum(axis=1)  # no BLAS: bit-identical everywhere
    aff1 = (world.membership * taste1).sum(axis=1)
    t = config.start + int(rng.integers(0, max(1, config.span_days * DAY // 2)))
    seen = np.zeros(n, dtype=bool)
    allowed = ~world.has_prev  # unseen items whose earlier series parts are seen
    pending: list[int] = []
    for step in range(length):
        w = config.drift * step / max(1, length - 1)
        affinity = (1.0 - w) * aff0 + w * aff1
        pending = [p for p in pending if not seen[p]]
        sequel = bool(pending) and rng.random() < config.sequel_prob
        choice = pending.pop(0) if sequel else _draw_by_taste(allowed, affinity, world.popularity, config, rng)
        if choice is None:
            break
        seen[choice] = True
        allowed[choice] = False
        nxt = int(world.next_part[choice])
        if nxt >= 0 and not seen[nxt]:
            pending.append(nxt)
            allowed[nxt] = True
        gap = rng.exponential(0.5 * DAY if sequel else 2.5 * DAY)
        t += 1 + int(gap)
        events.append(uid, world.items[choice].item_id, t, _rating(affinity, choice, rng))
    return user


def _draw_by_taste(allowed: np.ndarray, affinity: np.ndarray, popularity: np.ndarray,
                   config: SyntheticConfig, rng: np.random.Generator) -> int | None:
    """An allowed item with probability proportional to popularity x taste (inverse CDF,
    one uniform draw); None when nothing is allowed."""
    if not allowed.any():
        return None
    weights = np.where(allowed, popularity * np.power(affinity + 1e-3, config.taste_strength), 0.0)
    cdf = np.cumsum(weights)
    choice = int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"))
    choice = min(choice, len(allowed) - 1)
    if not allowed[choice]:  # only reachable through float edge cases
        choice = int(np.flatnonzero(allowed)[-1])
    return choice


def _rating(affinity: np.ndarray, choice: int, rng: np.random.Generator) -> float:
    """1-5 stars, higher the closer the item is to the user's current taste, with noise."""
    score = 1.0 + 4.0 * float(affinity[choice]) / max(float(affinity.max()), 1e-9)
    return float(min(5.0, max(1.0, round(score + float(rng.normal(0.0, 0.7))))))


def _series_links(items: Sequence[Item]) -> tuple[np.ndarray, np.ndarray]:
    """For each item, the index of the previous and next part of its series (-1: none)."""
    n = len(items)
    prev_part = np.full(n, -1, np.int64)
    next_part = np.full(n, -1, np.int64)
    series: dict[str, list[tuple[int, int]]] = {}
    for i, it in enumerate(items):
        name = str(it.attributes.get("series", "")).strip()
        part = str(it.attributes.get("part", "")).strip()
        if name and part.isdigit():
            series.setdefault(name, []).append((int(part), i))
    for parts in series.values():
        parts.sort()
        for (_, a), (_, b) in pairwise(parts):
            prev_part[b] = a
            next_part[a] = b
    return prev_part, next_part
