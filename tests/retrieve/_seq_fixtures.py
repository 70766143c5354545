"""Shared tiny training settings for the sequential/fused retriever tests (seconds on CPU)."""

from __future__ import annotations

from llmrank.retrieve.sequential.config import SequentialConfig


def tiny_config(model: str = "lru", **overrides) -> SequentialConfig:
    base = dict(model=model, hidden=16, layers=1, heads=1, max_len=12, batch_size=32,
                epochs=8, lr=1e-2, dropout=0.0, attn_dropout=0.0, weight_decay=0.0,
                patience=3, threads=1, device="cpu", seed=0)
    base.update(overrides)
    return SequentialConfig(**base)
