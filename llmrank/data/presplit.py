"""A split that ships with the data (RecBole ``<name>.train/.valid/.test.inter`` files).

Published benchmark numbers were computed on exactly these rows, so they are kept instead of
re-deriving a split. A row is (user code, position): its history is the user's first
``position`` items and its target the item at ``position`` of ``Dataset.histories()``."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

STAGES = ("train", "valid", "test")


@dataclass(frozen=True)
class PredefinedSplit:
    """Rows per stage as two aligned int arrays: user codes and target positions."""

    stages: Mapping[str, tuple[np.ndarray, np.ndarray]]

    def names(self) -> list[str]:
        return [s for s in STAGES if s in self.stages] + sorted(set(self.stages) - set(STAGES))

    def rows(self, stage: str) -> tuple[np.ndarray, np.ndarray]:
        """(users, positions) of one stage; KeyError names the stages that exist."""
        try:
            return self.stages[stage]
        except KeyError:
            raise KeyError(f"no {stage!r} rows in this split; stages: {self.names()}") from None

    def examples(self, stage: str, histories: Sequence[np.ndarray]) -> Iterator[tuple[int, np.ndarray, int]]:
        """(user code, history item codes, target item code) for each row of ``stage``."""
        users, positions = self.rows(stage)
        for u, p in zip(users.tolist(), positions.tolist(), strict=True):
            h = histories[u]
            yield u, h[:p], int(h[p])

    def leave_one_out_targets(self, histories: Sequence[np.ndarray]
                              ) -> tuple[np.ndarray, np.ndarray] | None:
        """Per-user (valid, test) target item codes, -1 for users without rows, when every
        user with valid/test rows has exactly one of each at their last two positions (the
        split is a leave-one-out split of the users it evaluates); else None."""
        out: list[np.ndarray] = []
        for stage, offset in (("valid", 2), ("test", 1)):
            if stage not in self.stages:
                return None
            users, positions = self.stages[stage]
            if len(np.unique(users)) != len(users):
                return None
            lengths = np.fromiter((len(histories[u]) for u in users.tolist()), np.int64, len(users))
            if not np.array_equal(positions, lengths - offset):
                return None
            targets = np.full(len(histories), -1, np.int64)
            targets[users] = [histories[u][p] for u, p in zip(users.tolist(), positions.tolist(),
                                                              strict=True)]
            out.append(targets)
        valid, test = out
        if not np.array_equal(valid >= 0, test >= 0):
            return None
        return valid, test

    def is_leave_one_out(self, histories: Sequence[np.ndarray]) -> bool:
        """True when the split equals ``LeaveOneOut.from_dataset``: each user with valid/test
        rows has one of each at their last two positions, and those users are exactly the
        ones with three or more items (a shipped split may evaluate others; then use
        ``LeaveOneOut.from_predefined``, which follows the rows)."""
        targets = self.leave_one_out_targets(histories)
        if targets is None:
            return False
        derived = np.fromiter((len(h) >= 3 for h in histories), bool, len(histories))
        return bool(np.array_equal(targets[0] >= 0, derived))
