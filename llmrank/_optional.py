"""Import optional heavy dependencies with an error that names the extra to install."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from llmrank.errors import MissingExtraError


def require(module: str, extra: str | None = None, package: str | None = None) -> ModuleType:
    """Import ``module`` or raise MissingExtraError telling the user what to pip install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        what = package or module.split(".")[0]
        hint = f"pip install 'llmrank[{extra}]'" if extra else f"pip install {what}"
        raise MissingExtraError(f"{what} is not installed ({exc}); install it with: {hint}") from exc


def available(module: str) -> bool:
    """True when ``module`` can be imported (without importing it)."""
    return importlib.util.find_spec(module) is not None
