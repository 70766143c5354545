"""Fixtures for fine-tuning tests: the tiny random model (2 layers, byte-level BPE, built once
per session), a small slice of ml-100k, and recipes that train in seconds on CPU."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_DISABLED", "true")


@pytest.fixture(scope="session", autouse=True)
def _threads() -> None:
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def prompt_model(tiny_model_dir):
    from llmrank.finetune.prompting import TokenizerPromptModel

    return TokenizerPromptModel.from_path(str(tiny_model_dir), 4096)


@pytest.fixture(scope="session")
def split100k(ml100k):
    from llmrank.data.splits import LeaveOneOut

    return LeaveOneOut.from_dataset(ml100k)


@pytest.fixture()
def home(tmp_path, monkeypatch) -> Path:
    """A private LLMRANK_HOME so adapters published by a test stay in the test."""
    path = tmp_path / "home"
    monkeypatch.setenv("LLMRANK_HOME", str(path))
    return path


@pytest.fixture(scope="session")
def recipe_factory(tiny_model_dir, ml100k_dir):
    """``tiny_recipe`` bound to the tiny model and ml-100k, for module-scoped runs that
    several tests share (the caller gives the output folder)."""

    def make(out: Path, **overrides: Any):
        return tiny_recipe(tiny_model_dir, out, ml100k_dir, **overrides)

    return make


@pytest.fixture()
def make_recipe(recipe_factory, tmp_path):
    """A factory of recipes that train the tiny model for a few steps on 12 ml-100k users
    (5 candidates, so prompts stay short for the tiny tokenizer)."""

    def make(out: Path | None = None, **overrides: Any):
        return recipe_factory(out or tmp_path / "run", **overrides)

    return make


def tiny_recipe(model_dir: Path, out: Path, ml100k_dir: Path, **overrides: Any):
    from llmrank.finetune.config import load_recipe

    base = {
        "base_model": str(model_dir), "out": str(out), "name": "tiny",
        "data.dataset": str(ml100k_dir), "data.kcore": 0,
        "prompt.max_prompt_tokens": 4096, "prompt.max_history": 5,
        "examples.max_users": 12, "examples.per_user": 1, "examples.n_candidates": 5,
        "train.max_steps": 3, "train.grad_accum": 1, "train.learning_rate": 5e-3,
        "train.save_steps": 100, "train.logging_steps": 1, "train.threads": 1,
        "train.warmup_ratio": 0.0, "train.report_to": ["none"], "train.progress": False,
        "validation.users": 0, "validation.n_negatives": 4, "validation.every": 1,
    }
    base.update(overrides)
    return load_recipe(None, base)


class PrefixOracle:
    """A retriever stand-in: for each training prefix, the rare ``pool`` items in order, with
    the true next item put at rank 3 for users of even code (missed for odd codes)."""

    def __init__(self, split, pool):
        ds = split.dataset
        self.pool = list(pool)
        self.next = {}
        for u in range(ds.n_users):
            seq = [ds.item_ids[c] for c in split.train[u]]
            for t in range(len(seq)):
                self.next[tuple(seq[:t])] = (u, seq[t])
            valid = split.valid_target[u]
            if valid >= 0:
                self.next[tuple(seq)] = (u, ds.item_ids[valid])

    def top_items(self, histories, k):
        rows = []
        for h in histories:
            u, nxt = self.next[tuple(h)]
            row = [i for i in self.pool if i != nxt]
            if u % 2 == 0:
                row.insert(2, nxt)
            rows.append(row[:k])
        return rows


@pytest.fixture(scope="session")
def prefix_oracle():
    """The PrefixOracle class (a retriever stand-in that knows each prefix's next item)."""
    return PrefixOracle
