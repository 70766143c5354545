"""make_chat_model: the local model shares the reranker's LLM; openai is configured lazily."""

from __future__ import annotations

import pytest

from llmrank.chat.factory import make_chat_model
from llmrank.chat.model import LocalChatModel
from llmrank.config import ChatConfig
from llmrank.errors import ConfigError


def test_local_shares_the_reranker_llm(rec):
    model = make_chat_model(ChatConfig(max_new_tokens=32), rec, lock=None, seed=3)
    assert isinstance(model, LocalChatModel) and model.llm is rec.reranker.llm
    assert (model.max_new_tokens, model.seed) == (32, 3)


def test_openai_needs_url_and_model():
    with pytest.raises(ConfigError, match="base_url and model"):
        make_chat_model(ChatConfig(backend="openai"))


def test_openai_builds_chat_openai(monkeypatch):
    pytest.importorskip("langchain_openai")
    monkeypatch.setenv("MY_KEY", "sk-test")
    model = make_chat_model(ChatConfig(backend="openai", base_url="http://127.0.0.1:9/v1",
                                       model="qwen", api_key_env="MY_KEY", max_new_tokens=64))
    assert type(model).__name__ == "ChatOpenAI"
    assert model.model_name == "qwen" and model.openai_api_base == "http://127.0.0.1:9/v1"
    assert model.openai_api_key.get_secret_value() == "sk-test"
    assert model.bind_tools([]) is not None  # tool calling is supported by the class
