"""The log-prob rules every backend shares, so label scores mean the same on each: one floor
for "as unlikely as it gets", and the estimate for a label token a server did not return
(it sent only its top-N tokens)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

FLOOR = -1e4  # the lowest log-prob a backend reports; finite, so sums and shifts stay finite


def clip_logprob(value: float) -> float:
    """A reported log-prob inside [FLOOR, 0] (servers round a certain token to slightly > 0)."""
    return max(min(float(value), 0.0), FLOOR)


def missing_label_floor(returned: Sequence[float], n_missing: int) -> float:
    """The log-prob given to each of ``n_missing`` labels absent from a top-N answer: no more
    than the smallest returned log-prob, nor than an equal share of the probability mass the
    returned tokens leave; FLOOR when nothing is missing."""
    if not n_missing:
        return FLOOR
    tail = max(1.0 - float(np.exp(np.asarray(returned, np.float64)).sum()), 1e-300)
    return max(min(min(returned), math.log(tail / n_missing)), FLOOR)
