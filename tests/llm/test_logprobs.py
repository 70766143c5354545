"""The shared log-prob rules (floor, clipping, missing-label estimate) of the LLM backends."""

from __future__ import annotations

import math

import pytest

from llmrank.llm.logprobs import FLOOR, clip_logprob, missing_label_floor


@pytest.mark.parametrize(("value", "expected"), [(-1.5, -1.5), (2e-4, 0.0), (-1e9, FLOOR), (0, 0.0)])
def test_clip_logprob(value, expected):
    assert clip_logprob(value) == expected


def test_missing_label_floor_is_below_every_returned_token_and_shares_the_leftover_mass():
    returned = [math.log(0.5), math.log(0.3)]  # 0.2 of the mass left
    assert missing_label_floor(returned, 2) == pytest.approx(math.log(0.1))
    assert missing_label_floor(returned, 0) == FLOOR  # nothing missing: the floor is unused
    tight = [math.log(0.05)] * 19  # 0.05 left for one label: capped by the smallest returned
    assert missing_label_floor(tight, 1) == pytest.approx(math.log(0.05))
    assert missing_label_floor([0.0], 3) == pytest.approx(math.log(1e-300 / 3))  # no mass left
    assert missing_label_floor([-2e4], 1) == FLOOR
