"""``llmrank serve``: the HTTP API (FastAPI + uvicorn) over one Recommender.

One process holds one Recommender and serialises model calls (llmrank.serve.service);
``--workers N`` runs N such processes behind one port, or use the vllm backend."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from llmrank.cli.common import JsonOpt, VerboseOpt, console, plain, print_json, setup_logging

ConfigOpt = typer.Option(None, "--config", "-c", help="TOML/YAML deployment config.")


def serve(
    config: Path | None = ConfigOpt,
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on (0.0.0.0 exposes it)."),
    port: int = typer.Option(8000, "--port", "-p", min=0, max=65535, help="TCP port."),
    workers: int = typer.Option(1, "--workers", "-w", min=1,
                                help="Worker processes, each with its own Recommender (and model)."),
    check: bool = typer.Option(False, "--check", help="Load everything, print /health and exit."),
    json_out: bool = JsonOpt,
    verbose: bool = VerboseOpt,
) -> None:
    """Serve recommend, rerank, explain, feedback and chat over HTTP (OpenAPI at /docs)."""
    from llmrank._optional import require

    setup_logging(verbose)
    require("fastapi", extra="serve")
    uvicorn = require("uvicorn", extra="serve")
    from llmrank.recommender import Recommender
    from llmrank.serve import create_app

    rec = Recommender.from_config(config, progress=not json_out)
    app = create_app(rec)
    health = app.state.service.health()
    url = f"http://{host}:{port}"
    if json_out:
        print_json({"url": url, "check": check, "health": health})
    else:
        console.print("[bold]llmrank[/] " + plain(
            f"{'checked' if check else 'serving at ' + url}: dataset "
            f"{health['dataset']['name']} ({health['dataset']['n_items']} items), "
            f"reranker {health['model']['reranker']}, policy {health['policy']}"
            + ("" if check else f"; OpenAPI at {url}/docs")))
    if check:
        return
    sys.stdout.flush()  # a reader of the pipe gets the document now, not when the server exits
    level = "debug" if verbose else "info"
    logs = {"log_config": _log_config(json_out)}
    if workers == 1:
        uvicorn.run(app, host=host, port=port, log_level=level, **logs)
        return
    import os

    from llmrank.serve.app import CONFIG_ENV

    del app, rec  # each worker process loads its own Recommender
    os.environ[CONFIG_ENV] = str(config.resolve()) if config else ""
    uvicorn.run("llmrank.serve.app:app_from_env", factory=True, host=host, port=port,
                workers=workers, log_level=level, **logs)


def _log_config(json_out: bool) -> dict[str, Any]:
    """uvicorn's logging config; with --json its access log goes to stderr (uvicorn writes it
    to stdout, after the JSON document a script is reading there)."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    if json_out:
        config["handlers"]["access"]["stream"] = "ext://sys.stderr"
    return config


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
