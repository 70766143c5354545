"""Does a LoRA adapter belong to the model it is loaded on? Its weights are deltas of one
base model: on another model with the same shapes they load without complaint and rank
wrongly, on one with other shapes peft fails with an untyped size mismatch.

The adapter says what it was trained on: llmrank's manifest (``llmrank_adapter.json``: the
recipe's model name and the folder it resolved to) or peft's ``adapter_config.json``
(``base_model_name_or_path``). Names and paths are what can be compared without loading
weights, and the same model may sit at another path on another machine, so a mismatch is a
warning that names both; a shape mismatch at load time is a ModelError (``load_error``)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from llmrank.errors import ModelError

log = logging.getLogger(__name__)

ADAPTER_MANIFEST = "llmrank_adapter.json"  # written by llmrank.finetune.artifacts


def trained_on(adapter: Path) -> list[str]:
    """The names and paths of the base model the adapter folder records (may be empty)."""
    names: list[str] = []
    for file, keys in ((ADAPTER_MANIFEST, ("base_model", "base_model_path")),
                       ("adapter_config.json", ("base_model_name_or_path",))):
        try:
            data: Any = json.loads((adapter / file).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            names += [str(data[k]) for k in keys if isinstance(data.get(k), str) and data[k]]
    return names


def _same(a: str, b: str) -> bool:
    if a == b:
        return True
    pa, pb = Path(a).expanduser(), Path(b).expanduser()
    return pa.exists() and pb.exists() and pa.resolve() == pb.resolve()


def check_adapter_base(adapter: Path, model_id: str, model_path: str | Path | None = None) -> bool:
    """True when the adapter records the model (by name or path) or records nothing; else a
    warning naming both (module docstring: why not an error) and False."""
    recorded = trained_on(adapter)
    loaded = [str(model_id)] + ([str(model_path)] if model_path is not None else [])
    if not recorded or any(_same(r, m) for r in recorded for m in loaded):
        return True
    log.warning("adapter %s was trained on %s, and is loaded on %s: a LoRA adapter only fits its "
                "base model (scores are wrong on another one with the same shapes)",
                adapter, " / ".join(dict.fromkeys(recorded)), " / ".join(dict.fromkeys(loaded)))
    return False


def load_error(adapter: Path, model_id: str, exc: BaseException) -> ModelError:
    """The typed error for an adapter the model cannot take (peft's size mismatch)."""
    recorded = " / ".join(dict.fromkeys(trained_on(adapter))) or "an unrecorded model"
    return ModelError(f"adapter {adapter} does not fit model {model_id!r} (it was trained on "
                      f"{recorded}): {type(exc).__name__}: {str(exc)[:300]}")
