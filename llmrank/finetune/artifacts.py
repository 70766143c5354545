"""Adapters as artifacts: a peft LoRA folder plus ``llmrank_adapter.json``, a manifest that
says what the adapter is for and how it was made (base model, prompt template and version,
prompt settings, dataset and preprocessing, metrics, seed, package versions, git commit,
training time).

Why a manifest: an adapter is only valid with the prompt it was trained on (template
version, history length, candidate text), and users most often cannot reproduce a number.
The reranker reads ``prompt`` from it to render the same prompts at inference.

Loading by name: ``llmrank_home()/adapters/<name>`` or a path, resolved by
``llmrank.models.resolve_adapter``; every backend's ``load_adapter(name_or_path)`` uses that
(transformers through peft, vLLM through ``LoRARequest(name, id, path)``)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from llmrank.errors import ModelError
from llmrank.finetune.config import PromptSpec
from llmrank.models.adapter_fit import ADAPTER_MANIFEST
from llmrank.models.resolve import adapters_dir, models_dir, resolve_adapter, resolve_model

log = logging.getLogger(__name__)

MANIFEST = ADAPTER_MANIFEST
FORMAT_VERSION = 1
PACKAGES = ("llmrank", "torch", "transformers", "trl", "peft", "datasets", "accelerate", "numpy")


@dataclass
class AdapterManifest:
    """Everything needed to use and to reproduce an adapter."""

    name: str
    base_model: str  # as the recipe named it ('default', an HF id, a path)
    base_model_path: str  # what it resolved to when training
    template: str
    template_version: str
    prompt: dict[str, Any]  # PromptSpec fields: the reranker must render the same prompts
    mode: str  # 'sft' or 'dpo'
    seed: int
    dataset: dict[str, Any] = field(default_factory=dict)  # name, preprocessing, examples
    metrics: dict[str, Any] = field(default_factory=dict)  # best validation + history
    training: dict[str, Any] = field(default_factory=dict)  # steps, seconds, memory, device
    lora: dict[str, Any] = field(default_factory=dict)
    recipe: dict[str, Any] = field(default_factory=dict)
    from_adapter: str | None = None
    versions: dict[str, Any] = field(default_factory=dict)
    git: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    format_version: int = FORMAT_VERSION

    def prompt_spec(self) -> PromptSpec:
        """The prompt settings trained with, the template pinned to the version trained on
        (``rank@1.0.0``): a bare name loads the highest version installed, which may be a
        newer template than the adapter ever saw."""
        spec = PromptSpec(**self.prompt)
        name = spec.template
        if ("@" in name or name.endswith(".toml") or "/" in name or "\\" in name
                or not self.template_version or name != self.template):
            return spec
        return replace(spec, template=f"{name}@{self.template_version}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AdapterManifest:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


def provenance() -> dict[str, Any]:
    """Package versions and git state, from the eval harness's helpers."""
    from llmrank.eval.provenance import git_state, versions

    return {"versions": versions(PACKAGES), "git": git_state()}


def write_manifest(folder: Path, manifest: AdapterManifest) -> Path:
    if not manifest.created:
        manifest.created = time.strftime("%Y-%m-%dT%H:%M:%S")
    path = Path(folder) / MANIFEST
    path.write_text(json.dumps(manifest.to_dict(), indent=2, default=str), encoding="utf-8")
    return path


def read_manifest(adapter: str | Path) -> AdapterManifest:
    """The manifest of an adapter given by registry name or path."""
    folder = resolve_adapter(str(adapter))
    path = folder / MANIFEST
    if not path.is_file():
        raise ModelError(f"adapter {adapter!r} ({folder}) has no {MANIFEST}; it was not "
                         "saved by llmrank finetune")
    return _parse_manifest(path)


def _parse_manifest(path: Path) -> AdapterManifest:
    """ModelError for a manifest that is not JSON or lacks required fields (a hand-edited or
    truncated file): a JSONDecodeError or TypeError escaped the callers that handle ModelError."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise TypeError(f"a JSON {type(data).__name__}, not an object")
        return AdapterManifest.from_dict(data)
    except (ValueError, TypeError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ModelError(f"{path}: not a valid adapter manifest ({exc})") from exc


def merged_prompt_spec(model: str | Path) -> PromptSpec | None:
    """The prompt settings of a merged model, from the manifest ``merge_adapter`` copies into
    its folder (a path, or a name under ``models_dir()``): merged weights rank well only the
    prompts their adapter learned. None for any other model (nothing is downloaded)."""
    for folder in (Path(model).expanduser(), models_dir() / str(model)):
        if (folder / MANIFEST).is_file():
            return _parse_manifest(folder / MANIFEST).prompt_spec()
    return None


def prompt_spec_for(adapter: str | Path | None, model: str | Path | None = None) -> PromptSpec:
    """The prompt settings an adapter was trained with, else those of a merged ``model``
    (defaults for a base model or an adapter without a manifest): what a reranker passes to
    ``make_builder``."""
    if adapter is None:
        merged = merged_prompt_spec(model) if model else None
        return merged or PromptSpec()
    try:
        return read_manifest(adapter).prompt_spec()
    except ModelError:
        log.warning("adapter %s has no llmrank manifest; using default prompt settings", adapter)
        return PromptSpec()


def lora_fields(peft_config: dict[str, Any]) -> dict[str, Any]:
    """A peft LoRA config (``adapter_config.json`` or ``LoraConfig.to_dict()``) as the
    recipe's ``lora`` fields. ``top_layers`` counts ``layers_to_transform``: llmrank puts
    them on the last blocks."""
    targets = peft_config.get("target_modules") or []
    targets = [targets] if isinstance(targets, str) else sorted(targets)
    layers = peft_config.get("layers_to_transform")
    top = 0 if layers is None else 1 if isinstance(layers, int) else len(layers)
    return {"r": int(peft_config["r"]), "alpha": int(peft_config["lora_alpha"]),
            "dropout": float(peft_config.get("lora_dropout") or 0.0),
            "target_modules": targets, "top_layers": top}


def adapter_lora(adapter: str | Path) -> dict[str, Any]:
    """The recipe ``lora`` fields of a saved adapter, from its ``adapter_config.json`` (what
    the weights are, also for manifests written before they recorded it correctly)."""
    folder = resolve_adapter(str(adapter))
    return lora_fields(json.loads((folder / "adapter_config.json").read_text(encoding="utf-8")))


def save_adapter(model: Any, folder: str | Path, manifest: AdapterManifest,
                 adapter_names: tuple[str, ...] = ("default",)) -> Path:
    """Save the LoRA weights of ``model`` (a PeftModel; only ``adapter_names``, e.g. not a
    DPO reference copy) and the manifest. Written to a temporary folder, then renamed, so a
    crash never leaves a half adapter under the final name."""
    folder = Path(folder)
    with _staging(folder) as tmp:
        names = [n for n in adapter_names if n in getattr(model, "peft_config", {})]
        model.save_pretrained(str(tmp), selected_adapters=names or None)
        write_manifest(tmp, manifest)
    return folder


def copy_adapter(src: str | Path, dest: str | Path, manifest: AdapterManifest) -> Path:
    """Copy a saved adapter folder (e.g. the best checkpoint) to ``dest`` with ``manifest``."""
    src, dest = Path(src), Path(dest)
    if not (src / "adapter_config.json").is_file():
        raise ModelError(f"{src} holds no adapter (adapter_config.json missing)")
    with _staging(dest) as tmp:
        shutil.copytree(src, tmp, ignore=shutil.ignore_patterns("best.json", MANIFEST), dirs_exist_ok=True)
        write_manifest(tmp, manifest)
    return dest


def publish(folder: str | Path, name: str) -> Path:
    """Copy an adapter into the registry folder so that it loads by ``name`` everywhere (an
    adapter already published under ``name`` is replaced, with a warning)."""
    if not name or "/" in name or "\\" in name or name.startswith(".") or name.endswith(".partial"):
        raise ModelError(f"invalid adapter name {name!r}")
    if not (Path(folder) / "adapter_config.json").is_file():
        raise ModelError(f"{folder} holds no adapter (adapter_config.json missing)")
    dest = adapters_dir() / name
    if dest.exists():
        log.warning("adapter %r is replaced by the one in %s", name, folder)
    with _staging(dest) as tmp:
        shutil.copytree(folder, tmp, dirs_exist_ok=True)
    log.info("adapter %r published to %s", name, dest)
    return dest


@contextlib.contextmanager
def _staging(dest: Path) -> Iterator[Path]:
    """A hidden folder of this process to write into, renamed to ``dest`` (replacing it) when
    the block ends; removed when it fails. Unique per call and swapped under a lock, so
    concurrent publishes of one name never write into each other's files, a crash never leaves
    a half adapter under ``dest``, and no other adapter's folder is touched (the ``x.old`` and
    ``x.partial`` of name x were removed without asking: they may be adapters named so)."""
    from llmrank.models.gguf_import import lock

    tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp = dest.with_name(f".{dest.name}.partial-{tag}")
    try:
        tmp.mkdir(parents=True)
        yield tmp
        with lock(dest.with_name(f".{dest.name}.lock")):
            if dest.exists():
                old = dest.with_name(f".{dest.name}.old-{tag}")
                dest.rename(old)
                tmp.rename(dest)
                shutil.rmtree(old, ignore_errors=True)
            else:
                tmp.rename(dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def load_peft_model(adapter: str | Path, *, base_model: str | None = None,
                    trainable: bool = False, dtype: Any = None) -> Any:
    """Base model + adapter as a peft model (transformers). The base comes from the manifest
    unless ``base_model`` is given; ``trainable`` to continue training it."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    folder = resolve_adapter(str(adapter))
    base = base_model or _manifest_base(folder)
    path = resolve_model(base)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype or torch.float32)
    return PeftModel.from_pretrained(model, str(folder), is_trainable=trainable)


def _manifest_base(folder: Path) -> str:
    path = folder / MANIFEST
    if path.is_file():
        data = json.loads(path.read_text(encoding="utf-8"))
        return str(data.get("base_model_path") or data.get("base_model") or "default")
    cfg = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
    return str(cfg.get("base_model_name_or_path") or "default")


def merge_adapter(adapter: str | Path, dest: str | Path, *, base_model: str | None = None) -> Path:
    """Fold the LoRA weights into the base model and save a plain HF model folder (faster
    inference, no peft needed; loses the ability to switch adapters). The adapter's manifest
    is copied next to it as a record of what was merged."""
    from transformers import AutoTokenizer

    folder = resolve_adapter(str(adapter))
    model = load_peft_model(folder, base_model=base_model)
    merged = model.merge_and_unload()
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(str(dest), safe_serialization=True)
    AutoTokenizer.from_pretrained(resolve_model(base_model or _manifest_base(folder))) \
        .save_pretrained(str(dest))
    if (folder / MANIFEST).is_file():
        shutil.copy(folder / MANIFEST, dest / MANIFEST)
    return dest


def list_adapters() -> list[AdapterManifest]:
    """Manifests of the adapters in the registry folder (those saved by llmrank)."""
    root = adapters_dir()
    out: list[AdapterManifest] = []
    if not root.is_dir():
        return out
    for folder in sorted(p for p in root.iterdir() if (p / MANIFEST).is_file() and not p.name.startswith(".")):
        try:  # (hidden: a publish in progress, or one a crash interrupted)
            out.append(_parse_manifest(folder / MANIFEST))
        except ModelError as exc:
            log.warning("unreadable manifest in %s: %s", folder, exc)
    return out
