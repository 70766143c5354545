"""One device resolver for every torch backend: 'auto' follows the GPU, and a GPU asked for
where torch sees none is a ConfigError before anything loads (not torch's late traceback)."""

from __future__ import annotations

import pytest
import torch

from llmrank.devices import resolve_device
from llmrank.errors import ConfigError


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


@pytest.fixture
def one_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)


def test_auto_follows_the_gpu(no_gpu, monkeypatch):
    assert resolve_device("auto") == "cpu" and resolve_device("cpu") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda"


@pytest.mark.parametrize("device", ["cuda", "cuda:0", "mps"])
def test_a_gpu_that_is_not_there_is_a_config_error(no_gpu, device):
    with pytest.raises(ConfigError, match=f"device '{device}'.*(auto|cpu)"):
        resolve_device(device)


def test_a_gpu_index_beyond_the_machines_is_a_config_error(one_gpu):
    assert resolve_device("cuda:0") == "cuda:0" and resolve_device("cuda") == "cuda"
    with pytest.raises(ConfigError, match="sees 1 CUDA GPU"):
        resolve_device("cuda:1")


def test_every_backend_uses_it(no_gpu):
    """The reranker, the embedder, the sequential retriever and fine-tuning each refuse cuda
    here before loading a model (the first three crashed in torch after loading)."""
    from llmrank.embed.sentence_transformers import SentenceTransformerEmbedder
    from llmrank.finetune.config import TrainSpec
    from llmrank.finetune.trainer import pick_device
    from llmrank.llm.transformers_backend import TransformersLLM
    from llmrank.retrieve.sequential.model import resolve_device as sequential_device

    for make in (lambda: TransformersLLM("no-such-model", device="cuda"),
                 lambda: SentenceTransformerEmbedder("no-such-model", device="cuda"),
                 lambda: sequential_device("cuda"),
                 lambda: pick_device(TrainSpec(device="cuda"))):
        with pytest.raises(ConfigError, match="sees no CUDA GPU"):
            make()
