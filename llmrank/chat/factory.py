"""The chat model a config asks for: the project's LocalChatModel (offline default) or
ChatOpenAI against an OpenAI-compatible server (``vllm serve --enable-auto-tool-choice
--tool-call-parser hermes``). langchain-openai is imported only when that is configured."""

from __future__ import annotations

import logging
import os
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from llmrank._optional import require
from llmrank.errors import ConfigError

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from llmrank.config import ChatConfig
    from llmrank.recommender import Recommender

log = logging.getLogger(__name__)


def make_chat_model(config: ChatConfig, recommender: Recommender | None = None, *,
                    lock: AbstractContextManager[Any] | None = None, seed: int = 0) -> BaseChatModel:
    """Build the configured chat model. ``local`` without a model shares the recommender's
    reranker LLM (one copy of the weights in memory, serialised by ``lock``)."""
    if config.backend == "openai":
        return _openai(config)
    from llmrank.chat.model import LocalChatModel

    llm = None
    if config.model is None and recommender is not None and recommender.reranker is not None:
        llm = recommender.reranker.llm
    if llm is None:
        from llmrank.registry import llms

        rcfg = recommender.config.reranker if recommender is not None else None
        llm = llms.create("transformers", model=config.model or "default",
                          device=rcfg.device if rcfg else "auto", dtype=rcfg.dtype if rcfg else "auto")
    log.info("chat model: local %s:%s", getattr(llm, "name", "?"), getattr(llm, "model_id", "?"))
    return LocalChatModel(llm=llm, max_new_tokens=config.max_new_tokens,
                          temperature=config.temperature, seed=seed, lock=lock)


def _openai(config: ChatConfig) -> BaseChatModel:
    if not config.base_url or not config.model:
        raise ConfigError("[chat] backend 'openai' needs base_url and model "
                          "(e.g. http://127.0.0.1:8000/v1 and the name `vllm serve` was given)")
    mod = require("langchain_openai", extra="chat", package="langchain-openai")
    model: BaseChatModel = mod.ChatOpenAI(
        base_url=config.base_url, model=config.model, temperature=config.temperature,
        max_tokens=config.max_new_tokens, api_key=os.environ.get(config.api_key_env) or "EMPTY",
    )
    return model
