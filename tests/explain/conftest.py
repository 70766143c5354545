"""Tiny random models built in the test session (seconds), never downloaded."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_model_dir():
    from llmrank.llm.tiny import tiny_model

    return tiny_model("llama")


@pytest.fixture(scope="session")
def tiny_llm(tiny_model_dir):
    import torch

    torch.set_num_threads(min(2, torch.get_num_threads()))
    from llmrank.llm.transformers_backend import TransformersLLM

    return TransformersLLM(str(tiny_model_dir), batch_size=4)
