"""Fixtures of the chat tests: a small Recommender over the embedded catalog (fake LLM,
hashing embedder), built on catalog parts shared by the session."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from chat_fakes import CFG

from llmrank.llm.fake import FakeLLM
from llmrank.recommender import Recommender


@pytest.fixture(scope="session")
def catalog_parts():
    """Dataset and retriever of the embedded catalog, built once."""
    rec = Recommender.from_config(CFG, llm=FakeLLM())
    return rec.dataset, rec.retriever


def make_rec(catalog_parts, **cfg: Any) -> Recommender:
    ds, retriever = catalog_parts
    return Recommender.from_config({**CFG, **cfg}, dataset=ds, retriever=retriever, llm=FakeLLM())


@pytest.fixture
def rec_factory(catalog_parts) -> Callable[..., Recommender]:
    """Recommenders over the shared catalog parts, with config sections as keywords."""
    return lambda **cfg: make_rec(catalog_parts, **cfg)


@pytest.fixture
def rec(catalog_parts, tmp_path) -> Recommender:
    return make_rec(catalog_parts, feedback={"path": str(tmp_path / "fb.sqlite")})
