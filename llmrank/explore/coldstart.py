"""A controlled exposure budget for cold-start items.

An item is cold until the policy has shown it ``min_impressions`` times. While cold
candidates exist and the share of requests that already reserved a slot is below
``max_share``, one slot (``slot``, default the last) is reserved for a cold candidate, picked
uniformly at random (so its propensity is exactly 1 / #cold) or the best-scored one. The
decision itself is deterministic given the counts, so it adds no unknown randomness to the
logged propensities; when it fires, cold items are kept out of the other slots, which keeps
the other slots' propensities exact too. Under ``max_per`` caps the pick is among the cold
candidates that keep the caps next to the rest of the slate (none: the slot stays empty), and
its propensity averages over the policy's slates (exact for deterministic policies)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np


@dataclass
class ColdStartConfig:
    max_share: float = 0.0  # share of requests that may reserve a cold slot (0 = off)
    min_impressions: int = 5
    slot: int = -1  # reserved position, counted from the top (-1 = last)
    pick: Literal["random", "best"] = "random"

    def __post_init__(self) -> None:
        from llmrank.errors import ConfigError

        if not 0.0 <= self.max_share <= 1.0:
            raise ConfigError(f"cold_start.max_share must be in [0, 1], got {self.max_share}")
        if self.pick not in ("random", "best"):
            raise ConfigError(f"cold_start.pick must be random or best, got {self.pick!r}")


class ColdStartBudget:
    """Impression counts and the running share of requests that used the reserved slot."""

    def __init__(self, config: ColdStartConfig) -> None:
        self.config = config
        self.shown: Counter[str] = Counter()
        self.requests = 0
        self.fired = 0

    def cold_mask(self, items: Sequence[str]) -> np.ndarray:
        m = self.config.min_impressions
        if self.config.max_share <= 0:
            return np.zeros(len(items), dtype=bool)
        return np.array([self.shown[i] < m for i in items], dtype=bool)

    def fires(self, n_cold: int) -> bool:
        c = self.config
        return c.max_share > 0 and n_cold > 0 and self.fired < c.max_share * (self.requests + 1)

    def record(self, shown: Sequence[str], fired: bool) -> None:
        self.requests += 1
        self.fired += int(fired)
        self.shown.update(shown)

    @property
    def share(self) -> float:
        return self.fired / self.requests if self.requests else 0.0
