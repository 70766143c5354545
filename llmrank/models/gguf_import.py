"""Convert a GGUF file into a normal Hugging Face model folder, once.

transformers can read GGUF (``gguf_file=``) but dequantises on every load and a GGUF-loaded
model cannot be trained or served by vLLM with LoRA; a plain safetensors folder can. The
conversion drops ``quantization_config`` so the saved weights are ordinary fp32/bf16."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from llmrank.errors import ModelError

log = logging.getLogger(__name__)

MANIFEST = "llmrank_model.json"


@dataclass(frozen=True)
class ModelManifest:
    """What a converted folder came from, so `llmrank models list` can say it."""

    name: str
    source: str
    source_format: str
    dtype: str
    created: str


def default_name(gguf_path: Path) -> str:
    """'SmolLM2-135M-Instruct.Q4_1.gguf' -> 'smollm2-135m-instruct-q4_1'. A file name without
    ASCII letters or digits ('模型.gguf') gets 'model-' and a hash of it: never '', which made
    the models folder itself the destination."""
    stem = gguf_path.name
    if stem.lower().endswith(".gguf"):
        stem = stem[: -len(".gguf")]
    name = re.sub(r"[^a-z0-9_\-]+", "-", stem.lower()).strip("-")
    if not re.search(r"[a-z0-9]", name):
        name = "model-" + hashlib.sha256(stem.encode("utf-8")).hexdigest()[:8]
    return name


def check_name(name: str) -> str:
    """``name`` as one folder under the models folder: not '', '.', '..', a path ('a/b',
    '/abs'), hidden ('.x'), a work folder ('x.partial') or 'default' (which always means
    the offline default model), so it can be written there, listed and resolved by name."""
    if (not name or name.strip() != name or "/" in name or "\\" in name or name.startswith(".")
            or name.endswith(".partial") or name == "default"):
        raise ModelError(f"invalid model name {name!r}: use one folder name (letters, digits, "
                         "'-', '_'), not a path, '.'-prefixed, '*.partial' or 'default'")
    return name


@contextlib.contextmanager
def lock(path: Path) -> Iterator[None]:
    """An exclusive file lock, so two processes (or threads) never convert into one folder."""
    import fcntl

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(path, "w")  # noqa: SIM115 - closed by the with block below
    except OSError as exc:  # a read-only home, a file where the folder should be
        raise ModelError(f"cannot write to {path.parent}: {exc}") from exc
    with fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def import_gguf(gguf_path: str | Path, dest: str | Path, *, name: str | None = None,
                dtype: str = "float32", overwrite: bool = False) -> Path:
    """Dequantise ``gguf_path`` into ``dest`` (model + tokenizer + manifest) and return it.

    A complete existing folder is reused unless ``overwrite``: conversion costs a few seconds
    to minutes and must happen once, not on every start. Locked per ``dest``, so a parallel
    import waits and reuses the result. An existing ``dest`` that is not a converted model
    (no manifest) is refused, never deleted: it may be the user's own folder."""
    gguf_path = Path(gguf_path)
    dest = Path(dest)
    if not gguf_path.is_file():
        raise ModelError(f"GGUF file not found: {gguf_path}")
    with lock(dest.parent / f".{dest.name}.lock"):
        if (dest / MANIFEST).is_file() and not overwrite:
            _check_same_source(dest, gguf_path, dtype)
            log.info("reusing converted model at %s", dest)
            return dest
        if dest.exists() and not (dest / MANIFEST).is_file() and (not dest.is_dir() or any(dest.iterdir())):
            raise ModelError(f"{dest} exists and is not a converted model (no {MANIFEST}); "
                             "choose another destination or remove it")
        return _convert(gguf_path, dest, name=name, dtype=dtype)


def _convert(gguf_path: Path, dest: Path, *, name: str | None, dtype: str) -> Path:
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:  # pragma: no cover - base dependency
        raise ModelError(f"transformers/torch are needed to import GGUF: {exc}") from exc

    torch_dtype = getattr(torch, dtype, None)
    if not isinstance(torch_dtype, torch.dtype):
        raise ModelError(f"unknown dtype {dtype!r}")
    folder, fname = str(gguf_path.parent), gguf_path.name
    log.info("converting %s (dequantising to %s)", gguf_path, dtype)
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=fname)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=fname, dtype=torch_dtype)
    except Exception as exc:
        raise ModelError(f"cannot read GGUF {gguf_path}: {exc}") from exc
    # the weights are now plain tensors: a leftover quantization_config would make later
    # loaders (transformers, vLLM, peft) expect a quantised checkpoint
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    if getattr(model, "hf_quantizer", None) is not None:
        setattr(model, "hf_quantizer", None)  # noqa: B010 - untyped attribute of PreTrainedModel
    tmp = dest.with_name(dest.name + ".partial")
    try:
        if tmp.exists():  # left by a crashed run: its stale shards must not end up in dest
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        _strip_quantization(tmp / "config.json")
        manifest = ModelManifest(
            name=name or default_name(gguf_path), source=str(gguf_path.resolve()),
            source_format="gguf", dtype=dtype, created=time.strftime("%Y-%m-%dT%H:%M:%S"),
        )
        (tmp / MANIFEST).write_text(json.dumps(asdict(manifest), indent=2), encoding="utf-8")
    except BaseException as exc:
        # a full disk, a read-only folder, Ctrl-C: the half folder (hundreds of MB) goes, and
        # safetensors' own SafetensorError (not an OSError) becomes a typed error
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, Exception) and not isinstance(exc, ModelError):
            raise ModelError(f"cannot write the converted model to {dest}: {exc}") from exc
        raise
    old = dest.with_name(dest.name + ".old.partial")  # ".partial": never listed as a model
    if dest.exists():  # a converted model (checked above) or an empty folder: moved aside
        if old.exists():
            shutil.rmtree(old)
        dest.rename(old)
    tmp.rename(dest)  # atomic on one filesystem: a crash never leaves a half folder at dest
    if old.exists():
        shutil.rmtree(old)
    return dest


def _check_same_source(dest: Path, gguf_path: Path, dtype: str) -> None:
    """A converted folder is reused only for the GGUF it came from, in the dtype asked for:
    two files with one name (a/model.gguf, b/model.gguf) map to one folder, and the second
    got the first's model; a bfloat16 import got the float32 folder converted before."""
    manifest = read_manifest(dest)
    if manifest is not None and manifest.dtype and manifest.dtype != dtype:
        raise ModelError(f"{dest} was converted to {manifest.dtype}, not {dtype}; convert it under "
                         "another name (--name, --out) or replace the folder (--overwrite)")
    if manifest is None or not manifest.source:
        return  # written by another version: its source is unknown, reuse as before
    if Path(manifest.source) != gguf_path.resolve():
        raise ModelError(f"{dest} was converted from {manifest.source}, not {gguf_path.resolve()}; "
                         "convert this file under another name (--name, --out) or replace the "
                         "folder (--overwrite)")


def _strip_quantization(config_json: Path) -> None:
    data = json.loads(config_json.read_text(encoding="utf-8"))
    if data.pop("quantization_config", None) is not None:
        config_json.write_text(json.dumps(data, indent=2), encoding="utf-8")


def read_manifest(folder: Path) -> ModelManifest | None:
    path = folder / MANIFEST
    if not path.is_file():
        return None
    try:
        return ModelManifest(**json.loads(path.read_text(encoding="utf-8")))
    except (TypeError, ValueError):
        return None
