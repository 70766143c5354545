"""``llmrank models list|import-gguf|path``: the offline models of ``llmrank.models``
(``list_models``, ``import_gguf_cached`` / ``import_gguf``, ``resolve_model`` /
``resolve_adapter``) and the LLM backends registered by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from llmrank.cli.common import (
    JsonOpt,
    VerboseOpt,
    console,
    err_console,
    plain,
    print_json,
    setup_logging,
)
from llmrank.errors import ModelError

app = typer.Typer(help="Offline models: converted GGUFs, LoRA adapters, LLM backends.", no_args_is_help=True)


def _default_status() -> dict[str, Any]:
    """Where the offline default model comes from and whether it is converted yet."""
    from llmrank.models.gguf_import import MANIFEST
    from llmrank.models.resolve import DEFAULT_NAME, default_gguf, models_dir

    folder = models_dir() / DEFAULT_NAME
    try:
        gguf: str | None = str(default_gguf())
        problem = None
    except ModelError as exc:
        gguf, problem = None, str(exc)
    return {"name": DEFAULT_NAME, "gguf": gguf, "converted": (folder / MANIFEST).is_file(), "path": str(folder),
            "problem": problem}


@app.command("list")
def list_cmd(json_out: bool = JsonOpt) -> None:
    """Converted models and LoRA adapters under $LLMRANK_HOME, and the LLM backends."""
    from llmrank.config import llmrank_home
    from llmrank.models import list_models
    from llmrank.registry import llms

    found = list_models()
    default = _default_status()
    if json_out:
        print_json({"home": str(llmrank_home()), "models": found, "default": default,
                    "backends": llms.names()})
        return
    table = Table(title=plain(f"models and adapters in {llmrank_home()}"))
    for col in ("name", "kind", "size MB", "source", "path"):
        table.add_column(col, justify="right" if col == "size MB" else "left")
    for m in found:
        table.add_row(plain(m.name), plain(m.kind), f"{m.size_mb:.1f}", plain(m.source), plain(m.path))
    console.print(table)
    if not found:
        console.print("[dim](none yet: the default model is converted on first use, or run "
                      "`llmrank models import-gguf FILE.gguf`)[/]")
    state = "converted" if default["converted"] else ("not converted yet" if default["gguf"] else default["problem"])
    console.print(f"default model: {default['name']} ({state}; GGUF: {default['gguf'] or '-'})",
                  highlight=False, markup=False)
    console.print(f"LLM backends: {', '.join(llms.names())}", highlight=False, markup=False)


@app.command("import-gguf")
def import_gguf_cmd(
    path: Path = typer.Argument(..., help="The .gguf file (one file; join split parts first)."),
    name: str | None = typer.Option(None, "--name", help="Folder name under $LLMRANK_HOME/models "
                                    "(default: from the file name)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Write here instead of $LLMRANK_HOME/models/NAME."),
    dtype: str = typer.Option("float32", "--dtype", help="Weights dtype of the converted folder."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Convert again even if the folder exists."),
    json_out: bool = JsonOpt,
    verbose: bool = VerboseOpt,
) -> None:
    """Convert a GGUF file into a Hugging Face folder (dequantised, trainable, servable), once."""
    from llmrank.models import import_gguf, import_gguf_cached
    from llmrank.models.gguf_import import default_name, read_manifest

    setup_logging(verbose)
    if not path.is_file():
        raise ModelError(f"GGUF file not found: {path}")
    name = name or default_name(path)
    status = err_console.status(plain(f"converting {path.name} (dequantising to {dtype})")) if not json_out else None
    if status is not None:
        status.start()
    try:
        if out is None:  # the name checked (one folder under models/), locked against a parallel run
            folder = import_gguf_cached(path, name, overwrite=overwrite, dtype=dtype)
        else:
            folder = import_gguf(path, out, name=name, dtype=dtype, overwrite=overwrite)
    finally:
        if status is not None:
            status.stop()
    manifest = read_manifest(folder)
    info = {"name": name, "path": str(folder), "source": str(path.resolve()),
            "dtype": manifest.dtype if manifest else dtype, "created": manifest.created if manifest else ""}
    if json_out:
        print_json(info)
        return
    console.print("[green]converted[/] " + plain(f"{path} -> {folder} ({info['dtype']}, {info['created']})"),
                  highlight=False)
    console.print(f"use it with --model {name}", highlight=False, markup=False)


@app.command("path")
def path_cmd(
    name: str = typer.Argument(..., help="'default', a converted model's name, a folder, a .gguf, an "
                               "adapter name, or an HF id."),
    json_out: bool = JsonOpt,
    verbose: bool = VerboseOpt,
) -> None:
    """Resolve a model (or adapter) name to what the backends load, offline."""
    from llmrank.models import resolve_adapter, resolve_model

    setup_logging(verbose)
    status = err_console.status("resolving (the default model is converted on first use)") if not json_out else None
    if status is not None:
        status.start()
    try:
        resolved = resolve_model(name)
    finally:
        if status is not None:
            status.stop()
    kind = "adapter" if (Path(resolved) / "adapter_config.json").is_file() else "model"
    if not Path(resolved).is_dir():
        try:
            resolved, kind = str(resolve_adapter(name)), "adapter"
        except ModelError:
            kind = "hf-id"  # not local: from the HF cache, or downloaded where there is a network
    if kind == "model" and Path(resolved).is_dir() and not (Path(resolved) / "config.json").is_file():
        # resolve_model returns any folder (a backend's load says what is missing); an empty
        # folder was reported here as a local model
        raise ModelError(f"{resolved} is a folder but not a model: it has no config.json (nor an "
                         "adapter's adapter_config.json)")
    info = {"name": name, "path": resolved, "kind": kind, "local": Path(resolved).is_dir()}
    if json_out:
        print_json(info)
        return
    note = "" if info["local"] else "  (not a local folder: an HF hub id, loaded from the HF cache offline)"
    console.print(f"{resolved}{note}", highlight=False, markup=False)
