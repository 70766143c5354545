"""llmrank: a recommender whose ranking brain is a generative LLM.

``import llmrank`` is light: it imports no torch, faiss or vllm. Heavy pieces load lazily
when first used (``llmrank.Recommender`` imports the pipeline on first access)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmrank.errors import LlmrankError
from llmrank.records import Candidate, Filters, Item, RankedItem, RecRequest, RecResponse, User

__version__ = "0.1.0"

__all__ = [
    "Candidate",
    "Filters",
    "Item",
    "LlmrankError",
    "RankedItem",
    "RecRequest",
    "RecResponse",
    "Recommender",
    "User",
    "__version__",
]

if TYPE_CHECKING:
    from llmrank.recommender import Recommender


def __getattr__(name: str) -> Any:
    if name == "Recommender":
        from llmrank.recommender import Recommender

        return Recommender
    raise AttributeError(f"module 'llmrank' has no attribute {name!r}")
