"""Feedback: typed records, the FeedbackStore interface (SQLite by default), JSON-lines
import/export, rounds for learning and off-policy evaluation, and DPO preference pairs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmrank.feedback.base import FeedbackStore
from llmrank.feedback.pairs import preference_pairs
from llmrank.feedback.records import FeedbackEvent, Impression, PreferencePair
from llmrank.feedback.rounds import RewardSpec, Round, rounds

if TYPE_CHECKING:
    from llmrank.config import FeedbackConfig

__all__ = [
    "FeedbackEvent",
    "FeedbackStore",
    "Impression",
    "PreferencePair",
    "RewardSpec",
    "Round",
    "open_store",
    "preference_pairs",
    "rounds",
]


def open_store(config: FeedbackConfig | None = None, *, path: str | Path | None = None,
               **options: Any) -> FeedbackStore:
    """The store a config names (``[feedback] backend/path``), from the feedback_stores
    registry; ``path`` overrides the config's path."""
    from llmrank.config import FeedbackConfig
    from llmrank.registry import feedback_stores

    cfg = config or FeedbackConfig()
    store: FeedbackStore = feedback_stores.create(cfg.backend, path=path or cfg.path, **options)
    return store
