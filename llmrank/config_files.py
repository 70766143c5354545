"""Reading config files and applying dotted overrides: one implementation for the pipeline
config, eval configs and finetune recipes, so they accept the same formats and flags."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

from llmrank.errors import ConfigError


def read_config_file(path: Path, what: str = "config file") -> dict[str, Any]:
    """A mapping from a ``.toml``, ``.yaml`` or ``.yml`` file; ConfigError names the file."""
    if not path.is_file():
        raise ConfigError(f"{what} not found: {path}")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".toml":
            return tomllib.loads(text)
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
            if not isinstance(data, dict):
                raise ConfigError(f"{path}: top level must be a mapping")
            return data
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    raise ConfigError(f"{path}: {what} must be .toml, .yaml or .yml")


def with_overrides(raw: dict[str, Any], overrides: dict[str, Any] | None) -> dict[str, Any]:
    """A deep copy of ``raw`` with dotted keys (``{"reranker.permutations": 3}``) set, as CLI
    flags give them; None values are ignored. The caller's dict is never modified."""
    data = copy.deepcopy(raw)
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {dotted!r}: {key!r} is not a section")
        node[leaf] = value
    return data
