"""``llmrank index build|query|info``: index folders for any registered retriever kind.

Each command maps to a public function: ``build_retriever`` + ``save_retriever``,
``load_retriever(...).retrieve/similar_items``, ``read_manifest``."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from llmrank.cli.common import (
    JsonOpt,
    VerboseOpt,
    console,
    plain,
    print_json,
    progress_bar,
    setup_logging,
)
from llmrank.config import Config, DataConfig, load_config
from llmrank.data.dataset import Dataset
from llmrank.records import Candidate, Filters
from llmrank.registry import retrievers

app = typer.Typer(help="Build and query retrieval index folders.", no_args_is_help=True)

INDEX_KINDS = ("auto", "flat", "hnsw", "ivf")

DatasetOpt = typer.Option(None, "--dataset", "-d",
                          help="Dataset name (ml-latest-small, ml-100k, catalog, ...) or path.")
DataDirOpt = typer.Option(None, "--data-dir", help="Where named datasets live "
                          "(default $LLMRANK_DATA_DIR, else ./data).")
ConfigOpt = typer.Option(None, "--config", "-c", help="TOML/YAML config; flags override it.")
KOpt = typer.Option(10, "-k", "--k", min=1, help="How many results.")
GenreOpt = typer.Option(None, "--genre", help="Keep items of this genre (repeatable: any of).")
AttrOpt = typer.Option(None, "--attr", help="Keep items with KEY=VALUE (repeatable).")
DenyOpt = typer.Option(None, "--deny", help="Never return this item id (repeatable).")
AllowOpt = typer.Option(None, "--allow", help="Only return these item ids (repeatable).")


def search_words(text: str | None) -> str | None:
    """The --text of a query (an option callback): a blank one ("" or spaces) is a usage
    error (exit 2); it went on to the retriever and failed with "no items and no text"."""
    if text is not None and not text.strip():
        raise typer.BadParameter("is blank: give words to search for")
    return text


# ---- helpers shared with `llmrank retrieve` ----------------------------------------------
def load_data(data: DataConfig) -> Dataset:
    """The dataset a DataConfig names (``llmrank.data.load_dataset``: a name under the data
    dir, a path, or the embedded 'catalog'), preprocessed as configured (k-core, ...)."""
    from llmrank.data import load_dataset

    ds: Dataset = load_dataset(data)
    return ds


def make_config(config: Path | None, overrides: dict[str, Any]) -> Config:
    """The config file with the flags on top, its data paths made absolute."""
    cfg = load_config(config, overrides)
    return cfg.model_copy(update={"data": absolute_data_paths(cfg.data)})


def absolute_data_paths(data: DataConfig) -> DataConfig:
    """``data`` with a dataset given as a relative path, a relative data_dir and relative
    ``*_path`` loader options (items_path, meta_path) made absolute. An index folder records
    its DataConfig to reload the dataset (``retrieve --index --user``), and a relative path
    names another folder, or nothing, when that runs from another directory."""
    update: dict[str, Any] = {}
    if Path(data.dataset).expanduser().exists():  # a path, not a name looked up in data_dir
        update["dataset"] = _absolute(data.dataset)
    if data.data_dir:
        update["data_dir"] = _absolute(data.data_dir)
    options = {k: _absolute(v) if k.endswith("_path") and isinstance(v, str) else v
               for k, v in data.options.items()}
    if options != data.options:
        update["options"] = options
    return data.model_copy(update=update)


def _absolute(path: str) -> str:
    return os.path.abspath(os.path.expanduser(path))


@contextmanager
def progress_fn(enabled: bool) -> Iterator[Callable[[str, int, int], None]]:
    """A ProgressFn drawing one rich bar per stage (stderr; off with --json)."""
    with progress_bar(enabled) as progress:
        tasks: dict[str, Any] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(plain(stage), total=total)
            progress.update(tasks[stage], completed=done, total=total)

        yield update


def build_filters(genre: list[str] | None, attr: list[str] | None, deny: list[str] | None,
                  allow: list[str] | None, include_seen: bool = False) -> Filters:
    attributes: dict[str, set[str]] = {}
    if genre:
        attributes["genre"] = set(genre)
    for pair in attr or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"--attr wants KEY=VALUE, got {pair!r}")
        attributes.setdefault(key.strip(), set()).add(value.strip())
    return Filters(allow=frozenset(allow) if allow else None, deny=frozenset(deny or ()),
                   attributes={k: frozenset(v) for k, v in attributes.items()},
                   exclude_seen=not include_seen)


def show_candidates(candidates: list[Candidate], items: dict[str, Any], title: str) -> None:
    """The hits as a table; the title, ids, titles and genres are shown as written."""
    table = Table(title=plain(title))
    for col, justify in (("#", "right"), ("item", "left"), ("title", "left"),
                         ("genres", "left"), ("score", "right")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for rank, c in enumerate(candidates, 1):
        it = items.get(c.item_id)
        name = f"{it.title} ({it.year})" if it and it.year else (it.title if it else "")
        genres = ", ".join(it.genres) if it else ""
        table.add_row(str(rank), plain(c.item_id), plain(name), plain(genres), f"{c.score:.4f}")
    console.print(table)


def candidates_json(candidates: list[Candidate], items: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"rank": r, "item_id": c.item_id, "score": c.score, "source": c.source,
             "title": items[c.item_id].title if c.item_id in items else ""}
            for r, c in enumerate(candidates, 1)]


# ---- commands -----------------------------------------------------------------------------
@app.command("build")
def build(
    dataset: str | None = DatasetOpt,
    data_dir: str | None = DataDirOpt,
    out: Path | None = typer.Option(None, "--out", "-o", help="Index folder to write "
                                    "(default $LLMRANK_HOME/indexes/<dataset>/<retriever>)."),
    kind: str | None = typer.Option(None, "--kind", help="Index structure: auto|flat|hnsw|ivf "
                                    "(default: the config's, auto)."),
    retriever: str | None = typer.Option(None, "--retriever", help="Retriever kind: "
                                         + ", ".join(retrievers.names()) + " (default: the config's, text)."),
    kcore: int | None = typer.Option(None, "--kcore", help="k-core filter before indexing."),
    embedder: str | None = typer.Option(None, "--embedder", help="Embedder backend name."),
    model: str | None = typer.Option(None, "--model", help="Embedding model id or path."),
    config: Path | None = ConfigOpt,
    json_out: bool = JsonOpt,
    verbose: bool = VerboseOpt,
) -> None:
    """Embed a dataset's items and write an index folder."""
    from llmrank.retrieve import build_retriever, default_index_dir, retriever_kinds, save_retriever

    setup_logging(verbose)
    if kind is not None and kind not in INDEX_KINDS:
        raise typer.BadParameter(f"--kind must be one of {', '.join(INDEX_KINDS)}, got {kind!r}")
    if retriever is not None and retriever not in retriever_kinds():
        raise typer.BadParameter(f"--retriever must be one of {', '.join(retriever_kinds())}, "
                                 f"got {retriever!r}")
    cfg = make_config(config, {  # a flag not given (None) leaves the config's value
        "data.dataset": dataset, "data.data_dir": data_dir, "data.kcore": kcore,
        "index.kind": kind, "retriever.kind": retriever,
        "embedder.backend": embedder, "embedder.model": model,
    })
    retriever = cfg.retriever.kind
    t0 = time.perf_counter()
    ds = load_data(cfg.data)
    t1 = time.perf_counter()
    with progress_fn(not json_out) as progress:
        built = build_retriever(ds, cfg, progress=progress)  # the kind: cfg.retriever.kind
    t2 = time.perf_counter()
    folder = out or default_index_dir(ds.name, retriever)
    manifest = save_retriever(built, folder)
    t3 = time.perf_counter()
    build_info = dict(getattr(built, "build_info", {}) or {})
    summary = {
        "path": str(folder), "manifest": manifest.to_dict(), "build": build_info,
        "seconds": {"load": round(t1 - t0, 3), "build": round(t2 - t1, 3), "save": round(t3 - t2, 3)},
    }
    if json_out:
        print_json(summary)
        return
    table = Table(title=plain(f"index folder {folder}"), show_header=False)
    rows = [("retriever", manifest.kind), ("dataset", f"{ds.name} ({ds.n_items} items)"),
            ("index", f"{manifest.index.get('kind')} ({manifest.n_items} vectors, {manifest.dim}-d)"),
            ("embedder", manifest.embedder.model_id if manifest.embedder else "-"),
            *[(key.replace("_", " "), value) for key, value in build_info.items()],
            ("time", f"load {t1 - t0:.1f}s, build {t2 - t1:.1f}s, save {t3 - t2:.1f}s")]
    for key, value in rows:
        table.add_row(plain(key), plain(value))
    console.print(table)


@app.command("query")
def query(
    index: Path = typer.Option(..., "--index", "-i", help="Index folder."),
    text: str | None = typer.Option(None, "--text", "-t", callback=search_words, help="Free-text query."),
    item: str | None = typer.Option(None, "--item", help="Find items similar to this item id."),
    k: int = KOpt,
    genre: list[str] | None = GenreOpt,
    attr: list[str] | None = AttrOpt,
    deny: list[str] | None = DenyOpt,
    allow: list[str] | None = AllowOpt,
    json_out: bool = JsonOpt,
    verbose: bool = VerboseOpt,
) -> None:
    """Search an index folder by free text or by an item's neighbours."""
    from llmrank.retrieve import load_retriever

    setup_logging(verbose)
    if (text is None) == (item is None):
        raise typer.BadParameter("give exactly one of --text or --item")
    r: Any = load_retriever(index)
    filters = build_filters(genre, attr, deny, allow)
    t0 = time.perf_counter()
    if item is not None:
        hits = r.similar_items(item, k=k, filters=filters)
    else:
        hits = r.retrieve(text=text, k=k, filters=filters)
    seconds = time.perf_counter() - t0
    items = getattr(r, "items", {})
    if json_out:
        print_json({"index": str(index), "text": text, "item": item, "k": k,
                    "seconds": round(seconds, 4), "results": candidates_json(hits, items)})
        return
    show_candidates(hits, items, f"{'text ' + repr(text) if text else 'similar to ' + str(item)}")


@app.command("info")
def info(index: Path = typer.Option(..., "--index", "-i", help="Index folder."),
         json_out: bool = JsonOpt) -> None:
    """Show an index folder's manifest."""
    from llmrank.retrieve import read_manifest

    manifest = read_manifest(index).to_dict()
    if json_out:
        print_json(manifest)
        return
    table = Table(title=plain(index), show_header=False)
    for key, value in manifest.items():
        table.add_row(plain(key), plain(value))
    console.print(table)
