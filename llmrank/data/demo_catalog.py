"""The embedded demo catalog: 200 invented films written for llmrank (titles, years,
genres, tags, series, directors, one-sentence descriptions; none is copied from a dataset,
so it ships with the package under the project's license) plus synthetic users from
``llmrank.data.synthetic``. It lets the demo and the tests run on a machine with no data
and no network.

Three items carry prompt-injection text in their title, tags or description
(``ADVERSARIAL_ITEM_IDS``): the pipeline must treat them as data, and the tests check it."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from llmrank.data.dataset import Dataset
from llmrank.data.lines import ErrorPolicy, LoadReport, iter_lines, split_fields
from llmrank.data.synthetic import SyntheticConfig, generate_interactions
from llmrank.errors import DataError, MalformedLineError
from llmrank.records import Item

CATALOG_CSV = Path(__file__).with_name("catalog") / "items.csv"
CATALOG_COLUMNS = ("item_id", "title", "year", "genres", "tags", "series", "part", "director",
                   "runtime_min", "description")
ADVERSARIAL_ITEM_IDS = ("c198", "c199", "c200")


def catalog_items(path: str | Path | None = None, *, on_error: ErrorPolicy = "raise",
                  report: LoadReport | None = None) -> list[Item]:
    """Items of a catalog CSV in the demo's column layout (default: the embedded one)."""
    path = Path(path) if path is not None else CATALOG_CSV
    report = report if report is not None else LoadReport()
    items: list[Item] = []
    seen: dict[str, int] = {}
    header: list[str] | None = None
    for line_no, text in iter_lines(path, report=report, on_error=on_error):
        if header is None:
            header = next(csv.reader([text]))
            if tuple(h.strip() for h in header) != CATALOG_COLUMNS:
                raise DataError(f"{path}:{line_no}: header must be {','.join(CATALOG_COLUMNS)}")
            report.lines_read -= 1
            continue
        try:
            f = split_fields(text, sep=",", n_fields=len(CATALOG_COLUMNS), path=str(path),
                             line_no=line_no, quoted=True)
            row = dict(zip(CATALOG_COLUMNS, f, strict=True))
            iid = row["item_id"].strip()
            if not iid:
                raise MalformedLineError(str(path), line_no, "empty item_id")
            if iid in seen:
                raise MalformedLineError(str(path), line_no, f"duplicate id {iid!r} (first one, line {seen[iid]}, kept)")
            year = int(row["year"]) if row["year"].strip().isdecimal() else None
        except MalformedLineError as err:
            report.problem(err, on_error)
            continue
        seen[iid] = line_no
        attrs = {k: row[k].strip() for k in ("series", "part", "director", "runtime_min") if row[k].strip()}
        items.append(Item(
            iid, row["title"].strip(), year,
            tuple(g for g in row["genres"].split("|") if g), tuple(t for t in row["tags"].split("|") if t),
            row["description"].strip(), attrs,
        ))
    return items


def load_catalog(path: str | Path | None = None, *, name: str = "catalog", n_users: int = 300,
                 seed: int = 0, on_error: ErrorPolicy = "skip", report: LoadReport | None = None,
                 **synthetic: Any) -> Dataset:
    """The demo dataset: catalog items plus ``n_users`` synthetic users (seeded). Extra
    keyword arguments are ``SyntheticConfig`` fields."""
    report = report if report is not None else LoadReport()
    items = catalog_items(path, on_error=on_error, report=report)
    config = SyntheticConfig(n_users=n_users, seed=seed, **synthetic)
    ds = generate_interactions(items, config, name=name)
    report.steps.append(f"synthetic interactions: {n_users} users, seed {seed}")
    return ds
