"""``load_dataset(DataConfig)``: from a name or a path to a preprocessed Dataset.

Resolution order for ``cfg.dataset``: 'catalog' (the embedded demo), an existing path, a
folder of that name in the data directory, a known downloadable name (downloaded only
when asked). The data directory is ``cfg.data_dir``, else ``$LLMRANK_DATA_DIR``, else
``./data``. Then ratings below ``min_rating`` are dropped and the k-core is taken, and the
LoadReport attached to the dataset records every step."""

from __future__ import annotations

import inspect
import logging
import os
import time
from pathlib import Path
from typing import Any

from llmrank.config import DATA_DIR_ENV, DataConfig
from llmrank.data.dataset import Dataset
from llmrank.data.lines import LoadReport
from llmrank.errors import ConfigError, DataError, DatasetNotFoundError

log = logging.getLogger(__name__)

CATALOG = "catalog"
KNOWN_DATASETS = ("ml-100k", "ml-1m", "ml-10m", "ml-20m", "ml-25m", "ml-latest-small", "ml-latest")
# folder names the GroupLens zips unpack to, when they differ from the dataset name
_ALIASES = {"ml-10m": ("ml-10M100K",)}


def data_dir(configured: str | Path | None = None) -> Path:
    """Where datasets live: the configured folder, else $LLMRANK_DATA_DIR, else ./data."""
    if configured:
        return Path(configured).expanduser()
    env = os.environ.get(DATA_DIR_ENV)
    return Path(env).expanduser() if env else Path("data")


def detect_format(path: str | Path) -> str:
    """The ``loaders`` registry name that reads ``path`` (a file or a folder)."""
    path = Path(path)
    if path.is_dir():
        return _folder_format(path)
    if not path.is_file():
        raise DatasetNotFoundError(f"no such file or folder: {path}")
    return _file_format(path)


def _folder_format(path: Path) -> str:
    """A folder's format from the files it holds (a saved Dataset, MovieLens ratings, RecBole
    atomic files, Amazon JSON), in that order."""
    from llmrank.data.loaders.amazon import is_json_file
    from llmrank.data.store import is_saved_dataset

    if is_saved_dataset(path):
        return "llmrank"
    if any((path / f).is_file() for f in ("u.data", "ratings.dat", "ratings.csv")):
        return "movielens"
    if any(path.glob("*.inter")):
        return "recbole"
    if any(is_json_file(p) for p in path.iterdir()):
        return "amazon"
    raise DataError(f"{path}: cannot tell the dataset format from its files; pass --format "
                    f"(one of {', '.join(loader_names())})")


def _file_format(path: Path) -> str:
    """A file's format from its name; a JSON-lines file is Amazon reviews when its first
    record has the fields of a 2014 or 2023 review."""
    from llmrank.data.loaders.amazon import detect_version, first_record
    from llmrank.data.table_rows import table_format

    if path.name.endswith(".inter"):
        return "recbole"
    fmt = table_format(path)
    if fmt == "jsonl":
        rec = first_record(path) or {}
        if {"reviewerID", "overall"} & set(rec) or ("user_id" in rec and "parent_asin" in rec):
            detect_version(path)
            return "amazon"
        return "jsonl"
    if fmt is not None:
        return fmt
    raise DataError(f"{path}: unknown file type; pass --format (one of {', '.join(loader_names())})")


def loader_names() -> list[str]:
    from llmrank.registry import loaders

    return loaders.names()


def resolve(cfg: DataConfig, *, download: bool | None = None) -> tuple[str, Path | None]:
    """(loader name, path) for a config; path is None for the embedded catalog."""
    name = cfg.dataset
    if name == CATALOG and not Path(name).exists():
        if cfg.format not in (None, CATALOG):  # the embedded catalog has one format
            from llmrank.errors import ConfigError

            raise ConfigError(f"data.format {cfg.format!r} does not apply to the embedded catalog "
                              "(dataset 'catalog'); leave the format out or name a file")
        return CATALOG, None
    direct = Path(name).expanduser()
    root = data_dir(cfg.data_dir)
    candidates = [direct] if direct.exists() else []
    for alias in (name, *_ALIASES.get(name, ())):
        if not direct.is_absolute() and (root / alias).exists():
            candidates.append(root / alias)
    if not candidates:
        if name in KNOWN_DATASETS and (download if download is not None else cfg.download):
            from llmrank.data.download import download as fetch

            candidates.append(fetch(name, root))
        elif name in KNOWN_DATASETS:
            from llmrank.data.download import how_to_point_at_files

            raise DatasetNotFoundError(f"dataset {name!r} not found in {root}. Run `llmrank data download "
                                       f"{name}` where there is internet. {how_to_point_at_files(name, root)}")
        else:
            raise DatasetNotFoundError(f"dataset {name!r} is not a file or folder, not in {root}, and not a "
                                       f"known name ({CATALOG}, {', '.join(KNOWN_DATASETS)})")
    path = candidates[0]
    return (cfg.format or detect_format(path)), path


def load_dataset(cfg: DataConfig | None = None, *, download: bool | None = None,
                 report: LoadReport | None = None) -> Dataset:
    """Load and preprocess the dataset ``cfg`` names; ``dataset.report`` says what was done.
    ``download`` overrides ``cfg.download`` (fetch a known MovieLens release when missing)."""
    from llmrank.registry import loaders

    cfg = cfg or DataConfig()
    started = time.perf_counter()
    report = report if report is not None else LoadReport()
    fmt, path = resolve(cfg, download=download)
    report.source = str(path) if path is not None else CATALOG
    report.format = fmt
    kwargs: dict[str, Any] = {"on_error": cfg.on_error, "report": report, **cfg.options}
    if cfg.mapping:
        if fmt not in ("csv", "jsonl", "parquet", "recbole"):
            raise ConfigError(f"a column mapping applies to csv, jsonl, parquet and recbole data, not {fmt!r}")
        kwargs["mapping"] = cfg.mapping
    try:
        factory = loaders.get(fmt)
    except KeyError as exc:
        raise ConfigError(str(exc)) from None
    _check_options(fmt, factory, kwargs)
    ds = factory(path, **kwargs)
    ds = preprocess(ds, cfg, report)
    report.seconds = round(time.perf_counter() - started, 3)
    ds.report = report
    log.info("loaded %s (%s) in %.2fs: %d users, %d items, %d interactions", report.source, fmt,
             report.seconds, ds.n_users, ds.n_items, len(ds.interactions))
    return ds


def _check_options(fmt: str, factory: Any, kwargs: dict[str, Any]) -> None:
    """Unknown loader options are a config mistake: say which, before loading anything."""
    params = inspect.signature(factory).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        if fmt != "catalog":
            return
        from llmrank.data.synthetic import SyntheticConfig

        accepted = set(params) | set(SyntheticConfig.__dataclass_fields__)
    else:
        accepted = set(params)
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise ConfigError(f"loader {fmt!r} does not take options {unknown}; it takes "
                          f"{sorted(accepted - {'path', 'report', 'on_error', 'kwargs', 'synthetic'})}")


def preprocess(ds: Dataset, cfg: DataConfig, report: LoadReport) -> Dataset:
    """min_rating then k-core, each step recorded with the sizes before and after."""
    from llmrank.data.splits import kcore, min_rating

    if cfg.min_rating is not None:
        n_before = len(ds.interactions)
        ds = min_rating(ds, cfg.min_rating)
        report.steps.append(f"min_rating {cfg.min_rating:g}: {n_before} -> {len(ds.interactions)} interactions "
                            "(unrated ones kept; catalog unchanged)")
    if cfg.kcore > 1:
        before = (ds.n_users, ds.n_items, len(ds.interactions))
        ds = kcore(ds, cfg.kcore)
        report.steps.append(f"{cfg.kcore}-core: {before[0]} users, {before[1]} items, {before[2]} interactions -> "
                            f"{ds.n_users} users, {ds.n_items} items, {len(ds.interactions)} interactions")
    return ds
