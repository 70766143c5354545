"""Small synthetic datasets for harness tests (seconds, no files)."""

from __future__ import annotations

import pytest

from llmrank.data.splits import LeaveOneOut
from llmrank.eval.synthetic import synthetic_dataset


@pytest.fixture(scope="session")
def synth():
    return synthetic_dataset(n_users=120, n_items=200, seed=3)


@pytest.fixture(scope="session")
def synth_split(synth):
    return LeaveOneOut.from_dataset(synth)
