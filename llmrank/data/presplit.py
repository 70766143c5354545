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

    def is_leave_one_out(self, histories: Sequence[np.ndarray]) -> bool:
        """True when every user with valid/test rows has exactly one of each, at the last two
        positions: then the split equals ``LeaveOneOut.from_dataset``."""
        for stage, offset in (("valid", 2), ("test", 1)):
            if stage not in self.stages:
                return False
            users, positions = self.stages[stage]
            if len(np.unique(users)) != len(users):
                return False
            lengths = np.fromiter((len(histories[u]) for u in users.tolist()), np.int64, len(users))
            if not np.array_equal(positions, lengths - offset):
                return False
        v_users = np.sort(self.stages["valid"][0])
        t_users = np.sort(self.stages["test"][0])
        return bool(np.array_equal(v_users, t_users))
