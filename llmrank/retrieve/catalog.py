"""A snapshot of the catalog's item records saved next to the vectors (``items.jsonl``), so
an index folder can filter by attributes and show titles without reloading the dataset."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path

from llmrank.errors import IndexError_
from llmrank.records import Item

ITEMS_FILE = "items.jsonl"


def write_items(path: Path, items: Iterable[Item]) -> int:
    n = 0
    tmp = path / (ITEMS_FILE + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for it in items:
            row = {"item_id": it.item_id, "title": it.title, "year": it.year,
                   "genres": list(it.genres), "tags": list(it.tags),
                   "description": it.description, "attributes": dict(it.attributes)}
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    tmp.replace(path / ITEMS_FILE)
    return n


def read_items(path: Path) -> dict[str, Item]:
    file = path / ITEMS_FILE
    if not file.is_file():
        return {}
    items: dict[str, Item] = {}
    with file.open(encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, 1):
            try:
                row = json.loads(line)
                items[row["item_id"]] = Item(
                    item_id=row["item_id"], title=row.get("title", ""), year=row.get("year"),
                    genres=tuple(row.get("genres", ())), tags=tuple(row.get("tags", ())),
                    description=row.get("description", ""),
                    attributes=dict(row.get("attributes") or {}),
                )
            except (ValueError, KeyError, TypeError) as exc:
                raise IndexError_(f"{file}:{line_no}: malformed item ({exc})") from exc
    return items


def merge_items(base: Mapping[str, Item], extra: Iterable[Item]) -> dict[str, Item]:
    merged = dict(base)
    merged.update((it.item_id, it) for it in extra)
    return merged
