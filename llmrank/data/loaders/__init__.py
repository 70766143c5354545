"""Dataset loaders, registered by name in ``llmrank.registry.loaders``. Each takes
``(path, *, name=None, on_error='skip', report=None, **format options) -> Dataset``."""

from __future__ import annotations

import inspect
from typing import Any


def copy_signature(wrapper: Any, target: Any, drop: str) -> None:
    """Give a thin ``**kwargs`` wrapper its target's signature (minus ``drop``), so that
    ``load_dataset`` can reject unknown loader options before loading anything."""
    sig = inspect.signature(target)
    wrapper.__signature__ = sig.replace(parameters=[p for n, p in sig.parameters.items() if n != drop])
