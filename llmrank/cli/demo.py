"""``llmrank demo``: the main job on a fresh machine, offline by default.

Finds a dataset (the data directory, else a download where there is internet, else the
catalog this project ships), builds the retrieval index, then runs the full pipeline
(retrieve -> LLM rerank -> explain) for a few users and one free-text query, and says which
data and which models it used."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from llmrank.cli.common import JsonOpt, VerboseOpt, console, err_console, print_json, setup_logging
from llmrank.config import Config, DataConfig, load_config

log = logging.getLogger(__name__)

DEMO_DATASET = "ml-latest-small"


def choose_dataset(requested: str, data_dir: str | None, *, allow_download: bool) -> tuple[DataConfig, str]:
    """The data the demo runs on, and a sentence saying why. ``auto`` prefers ml-latest-small
    from the data directory, then a download, then the embedded catalog."""
    from llmrank.data.resolve import data_dir as resolve_dir
    from llmrank.errors import DatasetNotFoundError

    if requested != "auto":
        return DataConfig(dataset=requested, data_dir=data_dir), f"{requested} (asked for)"
    root = resolve_dir(data_dir)
    if (root / DEMO_DATASET).is_dir():
        return (DataConfig(dataset=DEMO_DATASET, data_dir=str(root), kcore=5),
                f"{DEMO_DATASET} found in {root} (5-core)")
    missing = f"no {DEMO_DATASET} in {root}; --offline: no download tried"
    if allow_download:
        from llmrank.data.download import download

        try:
            download(DEMO_DATASET, root, timeout=5.0)
            return (DataConfig(dataset=DEMO_DATASET, data_dir=str(root), kcore=5),
                    f"{DEMO_DATASET} downloaded from GroupLens into {root} (5-core)")
        except DatasetNotFoundError as exc:
            log.info("download failed: %s", exc)
            cause = exc.__cause__ or exc  # the network's reason, not the whole how-to
            missing = f"no {DEMO_DATASET} in {root} and the download failed: {getattr(cause, 'reason', cause)}"
    return (DataConfig(dataset="catalog"),
            f"the embedded demo catalog ({missing}); "
            f"point --data-dir or $LLMRANK_DATA_DIR at a MovieLens folder to use real data")


def demo_data(cfg: Config, dataset: str | None, data_dir: str | None, download: bool | None,
              config: Path | None) -> tuple[DataConfig, str]:
    """The config's [data] section when the config file has one and --dataset is not given
    (--data-dir and --download/--offline still apply to it); else ``choose_dataset``."""
    if config is not None and dataset is None and "data" in cfg.model_fields_set:
        given = {"data_dir": data_dir, "download": download}
        data = cfg.data.model_copy(update={k: v for k, v in given.items() if v is not None})
        return data, f"{data.dataset} (the [data] section of {config})"
    return choose_dataset(dataset or "auto", data_dir, allow_download=download is not False)


def demo(
    dataset: str | None = typer.Option(None, "--dataset", "-d",
                                       help="auto (data dir, else download, else embedded catalog), a name or a path "
                                            "(default: the --config's data section, else auto)."),
    data_dir: str | None = typer.Option(None, "--data-dir", help="Where datasets live (default $LLMRANK_DATA_DIR, else ./data)."),
    users: int = typer.Option(3, "--users", "-n", min=1, help="How many users to recommend for."),
    k: int = typer.Option(5, "-k", "--k", min=1, help="Items per user."),
    rerank: bool | None = typer.Option(None, "--rerank/--no-rerank",
                                       help="Rerank with the LLM (default: the config's, else on; default model offline)."),
    explain: bool = typer.Option(True, "--explain/--no-explain", help="Write explanations for shown items."),
    adapter: str | None = typer.Option(None, "--adapter", help="LoRA adapter (name or path) for the reranker."),
    download: bool | None = typer.Option(None, "--download/--offline",
                                         help="Try GroupLens when the data is missing (default: on, or the config's data.download)."),
    config: Path | None = typer.Option(None, "--config", "-c", help="TOML/YAML config; flags given override it."),
    json_out: bool = JsonOpt,
    verbose: bool = VerboseOpt,
) -> None:
    """Run the whole pipeline on a real dataset (or the shipped catalog) for a few users."""
    from llmrank.recommender import Recommender

    setup_logging(verbose)
    base = load_config(config, {"reranker.enabled": rerank, "reranker.adapter": adapter})
    data_cfg, why = demo_data(base, dataset, data_dir, download, config)
    cfg = base.model_copy(update={"data": data_cfg})
    if not json_out:
        err_console.print(f"[bold]data:[/] {escape(why)}", highlight=False)

    t0 = time.perf_counter()
    rec = Recommender.from_config(cfg, progress=not json_out)
    setup_seconds = time.perf_counter() - t0
    ds = rec.dataset
    chosen = _demo_users(ds, users, cfg.seed)
    results: list[dict[str, Any]] = []
    for user_id in chosen:
        resp = rec.recommend(user_id, k=k, explain=explain)
        results.append({"user_id": user_id, "history": ds.history(user_id)[-5:], "response": resp})
    text_query = _text_query(ds)
    text_resp = rec.recommend(text=text_query, k=k, explain=False)

    if json_out:
        from llmrank.cli.common import to_jsonable

        print_json({
            "data": why, "dataset": ds.summary(), "setup_seconds": round(setup_seconds, 2),
            "users": [{"user_id": r["user_id"], "recent_history": r["history"],
                       "response": to_jsonable(r["response"])} for r in results],
            "text_query": {"text": text_query, "response": to_jsonable(text_resp)},
        })
        return
    summary = ds.summary()
    console.print(Panel.fit(escape(
        f"{summary['users']} users, {summary['items']} items, {summary['interactions']} interactions\n"
        f"retriever: {cfg.retriever.kind}   reranker: "
        f"{rec.describe_reranker()}   setup {setup_seconds:.1f}s"),
        title=escape(f"llmrank demo on {ds.name}")))
    for r in results:
        _show(ds, r["user_id"], r["history"], r["response"], explain)
    _show(ds, None, [], text_resp, False, title=f"free text: {text_query!r}")


def _demo_users(ds: Any, n: int, seed: int) -> list[str]:
    """n users with enough history to be interesting, picked reproducibly."""
    import numpy as np

    lengths = np.array([len(h) for h in ds.histories()])
    eligible = np.flatnonzero(lengths >= 5)
    if len(eligible) == 0:
        eligible = np.flatnonzero(lengths >= 1)
    rng = np.random.default_rng(seed)
    picked = rng.choice(eligible, size=min(n, len(eligible)), replace=False)
    return [ds.user_ids[int(u)] for u in sorted(picked)]


def _text_query(ds: Any) -> str:
    genres = {g for it in ds.items.values() for g in it.genres}
    if "Sci-Fi" in genres:
        return "a thoughtful science fiction film about memory and identity"
    top = sorted(genres)[:2]
    return f"something {' and '.join(top).lower()} for a quiet evening" if top else "something new"


def _show(ds: Any, user_id: str | None, history: list[str], resp: Any, explain: bool,
          title: str | None = None) -> None:
    """One response as a table; titles and explanations are escaped (a film called
    "[REC]" is data, not rich markup)."""
    from llmrank.data.itemtext import item_title

    if user_id is not None:
        recent = "; ".join(item_title(ds.items[i]) for i in history if i in ds.items)
        title = f"user {user_id} (recently: {recent})"
    table = Table(title=escape(title) if title else None, show_lines=explain)
    table.add_column("#", justify="right")
    table.add_column("item")
    table.add_column("score", justify="right")
    if explain:
        table.add_column("why")
    for it in resp.items:
        name = item_title(ds.items[it.item_id]) if it.item_id in ds.items else it.item_id
        row = [str(it.position + 1), escape(name), f"{it.score:.3f}"]
        if explain:
            row.append(escape(it.explanation or ""))
        table.add_row(*row)
    console.print(table)
    stages = ", ".join(f"{s} {sec:.2f}s" for s, sec in resp.trace.stage_seconds.items())
    console.print(f"[dim]{stages}[/]")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
