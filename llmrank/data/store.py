"""The canonical on-disk form of a Dataset: a folder of Parquet files and a JSON manifest.

``llmrank data convert`` writes it from any supported source, and it reloads in a fraction
of a second (no text parsing), with the exact item/user numbering, interaction order and
predefined split of the original, so models trained on one load match the next.

    manifest.json       format, version, name, counts, load report, files
    items.parquet       item_id, title, year, genres, tags, description, attributes (row = code)
    users.parquet       user_id, attributes (row = code)
    interactions.parquet user, item (codes), timestamp, rating, order
    split.parquet       stage, user, position (only with a predefined split)
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from llmrank.data.dataset import Dataset, Interactions
from llmrank.data.lines import ErrorPolicy, LoadReport
from llmrank.data.presplit import PredefinedSplit
from llmrank.errors import DataError
from llmrank.records import Item, User

log = logging.getLogger(__name__)

FORMAT = "llmrank-dataset"
VERSION = 1
MANIFEST = "manifest.json"


def is_saved_dataset(path: str | Path) -> bool:
    manifest = Path(path) / MANIFEST
    if not manifest.is_file():
        return False
    try:
        return json.loads(manifest.read_text(encoding="utf-8")).get("format") == FORMAT
    except (ValueError, OSError):
        return False


def save_dataset(ds: Dataset, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``ds`` to the folder ``path`` (created; an existing dataset folder is replaced
    only with ``overwrite``). Files are written first and the manifest last, so a folder
    with a manifest is always complete."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise DataError(f"{path} is a file, not a folder; a dataset is saved as a folder of Parquet files")
    if path.exists() and any(path.iterdir()):
        if not overwrite:
            raise DataError(f"{path} exists and is not empty; pass overwrite=True (--overwrite) to replace it")
        if not is_saved_dataset(path):
            raise DataError(f"{path} is not an llmrank dataset folder; refusing to overwrite it")
        (path / MANIFEST).unlink()
    path.mkdir(parents=True, exist_ok=True)
    items = [ds.items[i] for i in ds.item_ids]
    pq.write_table(pa.table({
        "item_id": pa.array(ds.item_ids, pa.string()),
        "title": pa.array([it.title for it in items], pa.string()),
        "year": pa.array([it.year for it in items], pa.int32()),
        "genres": pa.array([list(it.genres) for it in items], pa.list_(pa.string())),
        "tags": pa.array([list(it.tags) for it in items], pa.list_(pa.string())),
        "description": pa.array([it.description for it in items], pa.string()),
        "attributes": pa.array([_pairs(it.attributes) for it in items], pa.map_(pa.string(), pa.string())),
    }), path / "items.parquet")
    pq.write_table(pa.table({
        "user_id": pa.array(ds.user_ids, pa.string()),
        "attributes": pa.array([_pairs(ds.users[u].attributes) for u in ds.user_ids],
                               pa.map_(pa.string(), pa.string())),
    }), path / "users.parquet")
    inter = ds.interactions
    pq.write_table(pa.table({
        "user": inter.user.astype(np.int32), "item": inter.item.astype(np.int32),
        "timestamp": inter.timestamp.astype(np.int64), "rating": inter.rating.astype(np.float32),
        "order": inter.order.astype(np.int64),
    }), path / "interactions.parquet")
    files = ["items.parquet", "users.parquet", "interactions.parquet"]
    if ds.split is not None:
        stages, users, positions = [], [], []
        for stage in ds.split.names():
            u, p = ds.split.rows(stage)
            stages += [stage] * len(u)
            users.append(u)
            positions.append(p)
        pq.write_table(pa.table({
            "stage": pa.array(stages, pa.string()),
            "user": np.concatenate(users).astype(np.int32),
            "position": np.concatenate(positions).astype(np.int32),
        }), path / "split.parquet")
        files.append("split.parquet")
    elif (path / "split.parquet").exists():
        (path / "split.parquet").unlink()
    manifest = {
        "format": FORMAT, "version": VERSION, "name": ds.name,
        "users": ds.n_users, "items": ds.n_items, "interactions": len(inter),
        "has_ratings": inter.has_ratings(), "files": files,
        "report": ds.report.to_dict() if ds.report is not None else None,
    }
    (path / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    log.info("saved dataset %s to %s", ds.name, path)
    return path


def load_saved(path: str | Path, *, name: str | None = None, on_error: ErrorPolicy = "raise",
               report: LoadReport | None = None) -> Dataset:
    """Reload a folder written by ``save_dataset``. Parquet files are checked as a whole,
    so ``on_error`` has nothing line-level to skip: inconsistencies raise DataError."""
    import pyarrow.parquet as pq

    path = Path(path)
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise DataError(f"{path}: no {MANIFEST}; not an llmrank dataset folder")
    try:
        manifest: dict[str, Any] = json.loads(manifest_path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise DataError(f"{manifest_path}: not valid JSON: {exc}") from exc
    if manifest.get("format") != FORMAT or int(manifest.get("version", 0)) > VERSION:
        raise DataError(f"{manifest_path}: format {manifest.get('format')!r} version {manifest.get('version')!r} "
                        f"is not {FORMAT!r} <= {VERSION}")
    report = report if report is not None else LoadReport()
    try:
        items_t = pq.read_table(path / "items.parquet").to_pydict()
        users_t = pq.read_table(path / "users.parquet").to_pydict()
        inter_t = pq.read_table(path / "interactions.parquet")
        split_t = pq.read_table(path / "split.parquet") if "split.parquet" in manifest.get("files", []) else None
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read dataset files: {exc}") from exc
    report.files += [str(path / f) for f in manifest.get("files", [])]
    original = manifest.get("report") or {}
    if original.get("source"):
        report.steps.append(f"saved from {original['source']} ({original.get('format') or 'unknown format'})")
    report.steps += list(original.get("steps") or [])
    items = [
        Item(iid, title or "", year, tuple(genres or ()), tuple(tags or ()), desc or "", dict(attrs or []))
        for iid, title, year, genres, tags, desc, attrs in zip(
            items_t["item_id"], items_t["title"], items_t["year"], items_t["genres"], items_t["tags"],
            items_t["description"], items_t["attributes"], strict=True)
    ]
    users = [User(uid, dict(attrs or [])) for uid, attrs in zip(users_t["user_id"], users_t["attributes"], strict=True)]
    col = {c: inter_t.column(c).to_numpy() for c in ("user", "item", "timestamp", "rating", "order")}
    inter = Interactions(col["user"].astype(np.int32), col["item"].astype(np.int32),
                         col["timestamp"].astype(np.int64), col["rating"].astype(np.float32),
                         col["order"].astype(np.int64))
    report.lines_read += len(inter)
    _check(path, manifest, len(items), len(users), inter)
    ds = Dataset(name or str(manifest.get("name") or path.name), {it.item_id: it for it in items},
                 {u.user_id: u for u in users}, inter, [it.item_id for it in items], [u.user_id for u in users])
    if split_t is not None:
        stages = np.asarray(split_t.column("stage").to_pylist(), dtype=object)
        users_col = split_t.column("user").to_numpy().astype(np.int32)
        pos_col = split_t.column("position").to_numpy().astype(np.int32)
        ds.split = PredefinedSplit({s: (users_col[stages == s], pos_col[stages == s])
                                    for s in dict.fromkeys(stages.tolist())})
    return ds


def _pairs(attrs: Any) -> list[tuple[str, str]]:
    return [(str(k), str(v)) for k, v in dict(attrs or {}).items()]


def _check(path: Path, manifest: dict[str, Any], n_items: int, n_users: int, inter: Interactions) -> None:
    """Catch truncated or mixed-up files before they turn into wrong results later."""
    expected = (manifest.get("items"), manifest.get("users"), manifest.get("interactions"))
    if expected != (n_items, n_users, len(inter)):
        raise DataError(f"{path}: files hold {n_items} items, {n_users} users, {len(inter)} interactions "
                        f"but the manifest says {expected}")
    if len(inter) and (inter.user.min() < 0 or inter.user.max() >= n_users
                       or inter.item.min() < 0 or inter.item.max() >= n_items):
        raise DataError(f"{path}: interaction codes out of range")
