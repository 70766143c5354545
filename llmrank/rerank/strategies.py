"""More candidates than labels: a tournament or RankGPT-style sliding windows.

Both run in rounds: each round asks for some windows (lists of candidate positions) to be
scored, and each yields "levels": groups of candidates whose final place is settled, best
level first. ``level_scores`` turns levels into one score per candidate that orders them
correctly (scores are comparable within a request only)."""

from __future__ import annotations

import math

import numpy as np


class Job:
    """One ranking of n candidates with L labels. ``pending()`` returns the windows of the
    current round ([] when finished); ``feed(scores)`` takes one renormalised log-prob array
    per window."""

    def __init__(self, n: int, n_labels: int) -> None:
        if n_labels < 2:
            raise ValueError("at least two labels are needed")
        self.n = n
        self.L = n_labels
        self.levels: list[tuple[list[int], np.ndarray]] = []  # best level first once done
        self.done = False

    def pending(self) -> list[list[int]]:
        raise NotImplementedError

    def feed(self, scores: list[np.ndarray]) -> None:
        raise NotImplementedError

    def result(self) -> np.ndarray:
        """A score per candidate position: levels stacked so that every item of a better level
        scores above every item of a worse one; within a level, the window log-probs."""
        out = np.full(self.n, -np.inf)
        floor: float | None = None
        for idx, lp in self.levels:
            lp = np.asarray(lp, dtype=np.float64)
            shift = 0.0 if floor is None else min(0.0, floor - 1.0 - float(lp.max()))
            out[idx] = lp + shift
            floor = float((lp + shift).min())
        return out


class SingleJob(Job):
    """All candidates fit under the labels: one window, one level."""

    def pending(self) -> list[list[int]]:
        return [] if self.done else [list(range(self.n))]

    def feed(self, scores: list[np.ndarray]) -> None:
        self.levels = [(list(range(self.n)), scores[0])]
        self.done = True


class TournamentJob(Job):
    """Balanced groups of at most L; each group's best ``L // groups`` advance until the pool
    fits one final window. Eliminated items rank below every survivor; the losers of one round
    share a level, where their group scores are moved to the final window's scale first (a
    window's log-probs are relative to that window's competitors, so a strong group's loser
    would otherwise read lower than a weak group's loser the model likes less)."""

    def __init__(self, n: int, n_labels: int) -> None:
        super().__init__(n, n_labels)
        self.pool = list(range(n))
        self._windows: list[list[int]] = []
        # per knock-out round: how many advanced from each window, and (window, scores, order)
        self._rounds: list[tuple[int, list[tuple[list[int], np.ndarray, np.ndarray]]]] = []

    def pending(self) -> list[list[int]]:
        if self.done:
            return []
        if len(self.pool) <= self.L:
            self._windows = [self.pool]
        else:
            groups = math.ceil(len(self.pool) / self.L)
            self._windows = [list(w) for w in np.array_split(np.asarray(self.pool), groups)]
        return self._windows

    def feed(self, scores: list[np.ndarray]) -> None:
        if len(self._windows) == 1:
            final = np.asarray(scores[0], dtype=np.float64)
            self.levels = [(self._windows[0], final), *self._knocked_out(self._windows[0], final)]
            self.done = True
            return
        keep = max(1, self.L // len(self._windows))
        survivors: list[int] = []
        windows = []
        for window, lp in zip(self._windows, scores, strict=True):
            order = np.argsort(-lp, kind="stable")
            survivors += [window[i] for i in sorted(order[:keep])]
            windows.append((window, np.asarray(lp, dtype=np.float64), order))
        self._rounds.append((keep, windows))
        self.pool = sorted(survivors, key=self.pool.index)  # keep the presented order

    def _knocked_out(self, final: list[int], final_lp: np.ndarray) -> list[tuple[list[int], np.ndarray]]:
        """One level per round, latest first. A group's losers are shifted by the mean
        difference its survivors showed between the final scale and this window (rounds
        are walked back from the final, so every survivor's final-scale score is known)."""
        scaled = {c: float(v) for c, v in zip(final, final_lp, strict=True)}
        levels: list[tuple[list[int], np.ndarray]] = []
        for keep, windows in reversed(self._rounds):
            idx: list[int] = []
            for window, lp, order in windows:
                shift = float(np.mean([scaled[window[i]] - lp[i] for i in order[:keep]]))
                for i in order[keep:]:
                    scaled[window[i]] = float(lp[i]) + shift
                    idx.append(window[i])
            levels.append((idx, np.asarray([scaled[c] for c in idx])))
        return levels


class WindowJob(Job):
    """RankGPT sliding windows from the back of the list to the front, step L // 2: each
    window's best half moves on to the next window; the rest is settled there."""

    def __init__(self, n: int, n_labels: int) -> None:
        super().__init__(n, n_labels)
        self.step = max(1, n_labels // 2)
        self.carry: list[int] = []  # best of the previous window, moving forward
        self.end = n  # candidates [start, end) not yet scored
        self._window: list[int] = []
        self._settled: list[tuple[list[int], np.ndarray]] = []  # back of the list first

    def pending(self) -> list[list[int]]:
        if self.done:
            return []
        take = self.L - len(self.carry)
        start = max(0, self.end - take)
        self._window = list(range(start, self.end)) + self.carry
        self.end = start
        return [self._window]

    def feed(self, scores: list[np.ndarray]) -> None:
        lp = scores[0]
        order = np.argsort(-lp, kind="stable")
        if self.end == 0:  # the front window: everything in it is settled
            self.levels = [([self._window[i] for i in order], lp[order]),
                           *reversed(self._settled)]
            self.done = True
            return
        n_carry = min(self.L - self.step, len(order))
        self.carry = [self._window[i] for i in order[:n_carry]]
        rest = order[n_carry:]
        self._settled.append(([self._window[i] for i in rest], lp[rest]))


STRATEGIES: dict[str, type[Job]] = {"tournament": TournamentJob, "window": WindowJob}


def make_job(n: int, n_labels: int, strategy: str) -> Job:
    if n <= n_labels:
        return SingleJob(n, n_labels)
    try:
        return STRATEGIES[strategy](n, n_labels)
    except KeyError:
        raise ValueError(f"unknown strategy {strategy!r}; valid: {sorted(STRATEGIES)}") from None
