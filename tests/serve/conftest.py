"""Fixtures of the serve tests: a small Recommender (embedded catalog, fake LLM, hashing
embedder) behind the app, with a scripted chat model for /chat."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from langchain_core.language_models import BaseChatModel
from serve_fakes import CFG, SearchThenAnswer

from llmrank.llm.fake import FakeLLM
from llmrank.recommender import Recommender
from llmrank.serve import create_app


@pytest.fixture(scope="session")
def catalog_parts():
    rec = Recommender.from_config(CFG, llm=FakeLLM())
    return rec.dataset, rec.retriever


@pytest.fixture
def make_client(catalog_parts, tmp_path):
    """make_client(**config sections) -> (TestClient, Recommender)."""

    def make(chat_model: BaseChatModel | None = None, feedback: bool = True, **cfg: Any):
        ds, retriever = catalog_parts
        full = {**CFG, **cfg}
        if feedback:
            full["feedback"] = {"path": str(tmp_path / f"fb-{uuid.uuid4().hex[:6]}.sqlite")}
        rec = Recommender.from_config(full, dataset=ds, retriever=retriever, llm=FakeLLM(
            generations=["Because you liked similar films, this one fits."]))
        app = create_app(rec, chat_model=chat_model or SearchThenAnswer())
        return TestClient(app, raise_server_exceptions=False), rec

    return make


@pytest.fixture
def client(make_client):
    return make_client()[0]
