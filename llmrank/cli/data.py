"""``llmrank data info|download|convert``.

Each command maps to one public function: ``llmrank.data.load_dataset`` (+ ``summary``),
``llmrank.data.download.download`` and ``llmrank.data.store.save_dataset``."""

from __future__ import annotations

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

app = typer.Typer(help="Inspect, download and convert datasets.", no_args_is_help=True)

DataDirOpt = typer.Option(None, "--data-dir", help="Where named datasets live (default $LLMRANK_DATA_DIR, else ./data).")
FormatOpt = typer.Option(None, "--format", "-f", help="Loader name (movielens, amazon, recbole, csv, jsonl, "
                         "parquet, llmrank, catalog); detected from the files when omitted.")
MappingOpt = typer.Option(None, "--mapping", "-m", help="Column mapping for csv/jsonl/parquet: "
                          "'user=uid,item=sku,timestamp=ts', JSON, or @file.json.")
KcoreOpt = typer.Option(None, "--kcore", min=0, help="Keep the k-core (users and items with >= k "
                        "interactions); 0 turns off a k-core the config sets.")
MinRatingOpt = typer.Option(None, "--min-rating", help="Drop interactions rated below this.")
OnErrorOpt = typer.Option(None, "--on-error", help="Malformed lines: 'skip' (count and report) or 'raise'.")
ConfigOpt = typer.Option(None, "--config", "-c", help="TOML/YAML config whose data section is the base; flags override it.")


def _data_config(source: str | None, config: Path | None, data_dir: str | None, fmt: str | None,
                 mapping: str | None, kcore: int | None, min_rating: float | None, on_error: str) -> Any:
    from llmrank.config import load_config
    from llmrank.data.mapping import ColumnMapping

    overrides: dict[str, Any] = {
        "data.dataset": source, "data.data_dir": data_dir, "data.format": fmt,
        "data.min_rating": min_rating, "data.on_error": on_error,
        "data.kcore": kcore,  # None keeps the config's; 0 is an explicit 'no k-core'
    }
    if mapping:
        parsed = ColumnMapping.parse(mapping)
        overrides["data.mapping"] = {k: v for k, v in vars(parsed).items() if v != getattr(ColumnMapping(), k)}
    data = load_config(config, overrides).data
    _refuse_format_for_catalog(data, from_flag=fmt is not None)
    return data


def _refuse_format_for_catalog(data: Any, *, from_flag: bool) -> None:
    """The embedded catalog has no files for a loader to read: a --format other than
    'catalog' was silently ignored for it (`data info catalog -f movielens` printed the
    catalog). A usage error instead, before anything loads."""
    from llmrank.data.resolve import CATALOG
    from llmrank.errors import ConfigError

    if data.dataset == CATALOG and not Path(CATALOG).exists() and data.format not in (None, CATALOG):
        where = f"--format {data.format}" if from_flag else f"data.format = {data.format!r} (config)"
        raise ConfigError(f"{where} does not apply to the embedded {CATALOG!r} dataset, which has no files "
                          "to load; leave the format out, or give a path to data in that format")


@app.command()
def info(
    source: str = typer.Argument(None, help="Dataset name (catalog, ml-latest-small, ...) or path; default: the config's."),
    data_dir: str = DataDirOpt, fmt: str = FormatOpt, mapping: str = MappingOpt, kcore: int | None = KcoreOpt,
    min_rating: float = MinRatingOpt, on_error: str = OnErrorOpt, config: Path = ConfigOpt,
    json_out: bool = JsonOpt, verbose: bool = VerboseOpt,
) -> None:
    """Summary of a dataset: sizes, density, history lengths, ratings, dates and how it loaded."""
    from llmrank.data.resolve import load_dataset

    setup_logging(verbose)
    cfg = _data_config(source, config, data_dir, fmt, mapping, kcore, min_rating, on_error)
    with console.status(plain(f"loading {cfg.dataset}"), spinner="dots") if not json_out else _null():
        ds = load_dataset(cfg)
    summary = dict(ds.summary())
    report = ds.report.to_dict() if ds.report is not None else {}
    if json_out:
        print_json({"summary": summary, "report": report})
        return
    table = Table(title=plain(f"dataset {ds.name}"), show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    rows = [
        ("source", f"{report.get('source', '')} ({report.get('format', '')})"),
        ("users", f"{ds.n_users:,}"), ("items", f"{ds.n_items:,}"),
        ("interactions", f"{len(ds.interactions):,}"), ("density", f"{summary['density']:.4%}"),
        ("history length", f"min {summary['history_length_min']}, median {summary['history_length_median']:g}, "
                           f"mean {summary['history_length_mean']}, max {summary['history_length_max']}"),
        ("ratings", f"{summary['rating_min']:g} .. {summary['rating_max']:g}" if summary["has_ratings"] else "none"),
        ("dates", f"{summary['first_timestamp']} .. {summary['last_timestamp']}"),
        ("items with a title", f"{summary['items_with_title']:,}"),
        ("predefined split", "yes" if summary["predefined_split"] else "no"),
        ("lines read", f"{report.get('lines_read', 0):,} from {len(report.get('files', []))} file(s)"),
        ("lines skipped", f"{report.get('skipped', 0):,}"),
        ("load time", f"{report.get('seconds', 0):.2f} s"),
    ]
    if report.get("repaired"):
        rows.append(("lines repaired", f"{report['repaired']:,} (lone UTF-16 surrogates replaced by U+FFFD)"))
    rows += [("preprocessing", step) for step in report.get("steps", [])]
    rows += [("problem", p) for p in report.get("problems", [])[:10]]
    for key, value in rows:
        table.add_row(key, plain(value))  # problems quote the file's lines
    console.print(table)


@app.command()
def download(
    name: str = typer.Argument(..., help="ml-100k, ml-1m, ml-10m, ml-20m, ml-25m, ml-latest-small or ml-latest."),
    data_dir: str = DataDirOpt,
    force: bool = typer.Option(False, "--force", help="Download again even if the folder exists."),
    timeout: float = typer.Option(10.0, "--timeout", help="Network timeout in seconds."),
    json_out: bool = JsonOpt, verbose: bool = VerboseOpt,
) -> None:
    """Download a MovieLens release from GroupLens, verify its checksum and unpack it."""
    from llmrank.data.download import download as fetch
    from llmrank.data.resolve import data_dir as resolve_dir

    setup_logging(verbose)
    root = resolve_dir(data_dir)
    with progress_bar(enabled=not json_out) as bar:
        task = bar.add_task(plain(f"downloading {name}"), total=None)

        def progress(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        path = fetch(name, root, force=force, timeout=timeout, progress=progress)
    if json_out:
        print_json({"name": name, "path": str(path)})
    else:
        console.print(f"[green]{plain(name)}[/] is in {plain(path)}")


@app.command()
def convert(
    src: str = typer.Argument(..., help="Dataset name or path to read."),
    dst: Path = typer.Argument(..., help="Folder to write (Parquet files + manifest.json)."),
    data_dir: str = DataDirOpt, fmt: str = FormatOpt, mapping: str = MappingOpt, kcore: int | None = KcoreOpt,
    min_rating: float = MinRatingOpt, on_error: str = OnErrorOpt, config: Path = ConfigOpt,
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing dataset folder."),
    json_out: bool = JsonOpt, verbose: bool = VerboseOpt,
) -> None:
    """Save a dataset (any supported format, preprocessed) in llmrank's own form.

    The saved folder reloads fast and keeps ids, order and any predefined split."""
    from llmrank.data.resolve import load_dataset
    from llmrank.data.store import save_dataset

    setup_logging(verbose)
    cfg = _data_config(src, config, data_dir, fmt, mapping, kcore, min_rating, on_error)
    with console.status(plain(f"converting {cfg.dataset}"), spinner="dots") if not json_out else _null():
        ds = load_dataset(cfg)
        path = save_dataset(ds, dst, overwrite=overwrite)
    out = {"path": str(path), "users": ds.n_users, "items": ds.n_items, "interactions": len(ds.interactions),
           "report": ds.report.to_dict() if ds.report is not None else {}}
    if json_out:
        print_json(out)
    else:
        console.print(plain(f"wrote {ds.name}: {ds.n_users:,} users, {ds.n_items:,} items, "
                            f"{len(ds.interactions):,} interactions to {path}"))
        if ds.report is not None and ds.report.skipped:
            console.print(f"[yellow]{ds.report.skipped} malformed line(s) skipped[/]; see `llmrank data info {plain(src)}`")


class _null:
    """A do-nothing context manager (no spinner when printing JSON)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
