"""HTTP API (``llmrank serve``): FastAPI over one Recommender per process.

``create_app`` imports FastAPI on call (``pip install 'llmrank[serve]'``); the wire models in
``llmrank.serve.schemas`` need only pydantic and are shared with the batch engines."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmrank.serve.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from llmrank.serve.app import create_app

        return create_app
    raise AttributeError(f"module 'llmrank.serve' has no attribute {name!r}")
