"""``llmrank retrieve --user ID | --text "..."``: candidates from an index folder (or from an
index built in memory over ``--dataset``; item embeddings come from the disk cache)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer

from llmrank.cli.common import JsonOpt, VerboseOpt, print_json, setup_logging
from llmrank.cli.index import (
    AllowOpt,
    AttrOpt,
    ConfigOpt,
    DataDirOpt,
    DatasetOpt,
    DenyOpt,
    GenreOpt,
    KOpt,
    build_filters,
    candidates_json,
    load_data,
    make_config,
    progress_fn,
    search_words,
    show_candidates,
)
from llmrank.config import DataConfig
from llmrank.registry import retrievers


def retrieve(
    user: str | None = typer.Option(None, "--user", "-u", help="User id (history from the dataset)."),
    text: str | None = typer.Option(None, "--text", "-t", callback=search_words,
                                    help="Free-text query (alone or with --user)."),
    k: int = KOpt,
    index: Path | None = typer.Option(None, "--index", "-i", help="Index folder (else built in memory)."),
    dataset: str | None = DatasetOpt,
    data_dir: str | None = DataDirOpt,
    retriever: str | None = typer.Option(None, "--retriever", help="Retriever kind when building: "
                                         + ", ".join(retrievers.names()) + " (default: the config's, text)."),
    genre: list[str] | None = GenreOpt,
    attr: list[str] | None = AttrOpt,
    deny: list[str] | None = DenyOpt,
    allow: list[str] | None = AllowOpt,
    include_seen: bool = typer.Option(False, "--include-seen", help="Allow items in the history."),
    config: Path | None = ConfigOpt,
    json_out: bool = JsonOpt,
    verbose: bool = VerboseOpt,
) -> None:
    """Retrieve candidates for a user's history or a free-text query."""
    from llmrank.retrieve import build_retriever, load_retriever, read_manifest

    setup_logging(verbose)
    if user is None and not text:
        raise typer.BadParameter("give --user ID or --text \"...\" (or both)")
    cfg = make_config(config, {"data.dataset": dataset, "data.data_dir": data_dir,
                               "retriever.kind": retriever})
    ds = None
    if index is not None:
        if user is not None:
            ds = load_data(_data_of(read_manifest(index).dataset, dataset, data_dir, cfg.data))
        # a --dataset other than the index's is refused (shared numeric ids, other films)
        r: Any = load_retriever(index, dataset=ds if dataset is not None else None, config=cfg)
    else:
        ds = load_data(cfg.data)
        with progress_fn(not json_out) as progress:
            r = build_retriever(ds, cfg, progress=progress)  # the kind: cfg.retriever.kind
    history = ds.history(user) if (ds is not None and user is not None) else None
    filters = build_filters(genre, attr, deny, allow, include_seen)
    t0 = time.perf_counter()
    hits = r.retrieve(history=history, text=text, k=k, filters=filters)
    seconds = time.perf_counter() - t0
    items = getattr(r, "items", {})
    if json_out:
        print_json({"user": user, "text": text, "k": k, "history_length": len(history or []),
                    "seconds": round(seconds, 4), "candidates": candidates_json(hits, items)})
        return
    who = f"user {user}" + (f" + {text!r}" if text else "") if user else repr(text)
    show_candidates(hits, items, f"{r.name} retrieval for {who}")


def _data_of(info: Any, dataset: str | None, data_dir: str | None, data: DataConfig) -> DataConfig:
    """Where the index's dataset came from (its recorded DataConfig), unless --dataset says
    otherwise; --data-dir still overrides the recorded folder."""
    if dataset is not None:
        return data
    if info.data_config:
        recorded = DataConfig.model_validate(info.data_config)
        return recorded.model_copy(update={"data_dir": data_dir or recorded.data_dir})
    return data.model_copy(update={
        "dataset": info.source or info.name,
        "data_dir": data_dir or info.data_dir,
        "kcore": info.kcore,
    })


def register(app: typer.Typer) -> None:
    app.command("retrieve")(retrieve)
