"""Fixtures of the batch tests: a small Recommender over the embedded catalog."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from batch_fakes import CFG

from llmrank.llm.fake import FakeLLM
from llmrank.recommender import Recommender


@pytest.fixture(scope="session")
def catalog_parts():
    rec = Recommender.from_config(CFG, llm=FakeLLM())
    return rec.dataset, rec.retriever


@pytest.fixture
def rec_factory(catalog_parts) -> Callable[..., Recommender]:
    def make(**cfg: Any) -> Recommender:
        ds, retriever = catalog_parts
        return Recommender.from_config({**CFG, **cfg}, dataset=ds, retriever=retriever, llm=FakeLLM())

    return make


@pytest.fixture
def rec(rec_factory) -> Recommender:
    return rec_factory()
