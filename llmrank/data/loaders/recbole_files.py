"""RecBole atomic files on disk: which files make up one dataset (``<name>.inter``,
``.item``, ``.user``, ``.text`` and the pre-split ``<name>.train/.valid/.test.inter``), their
typed headers (``user_id:token	item_id:token	rating:float``; types token, token_seq, float,
float_seq) and their rows as {field name: raw text}."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from llmrank.data.lines import ErrorPolicy, LoadReport, iter_lines
from llmrank.data.presplit import STAGES
from llmrank.errors import DataError, MalformedLineError

FIELD_TYPES = ("token", "token_seq", "float", "float_seq")


@dataclass(frozen=True)
class Field:
    name: str
    type: str


@dataclass
class AtomicFiles:
    name: str
    inter: Path | None = None
    item: Path | None = None
    user: Path | None = None
    text: Path | None = None
    stages: dict[str, Path] = field(default_factory=dict)


def find_atomic_files(path: Path) -> AtomicFiles:
    """The atomic files of one dataset, from its folder or any of its ``.inter`` files."""
    if path.is_file():
        folder, stem = path.parent, _stem(path.name)
    elif path.is_dir():
        folder = path
        stems = sorted({_stem(p.name) for p in path.glob("*.inter")})
        if path.name in stems:
            stem = path.name
        elif len(stems) == 1:
            stem = stems[0]
        else:
            raise DataError(f"{path}: expected the .inter files of one dataset, found stems {stems or 'none'}")
    else:
        raise DataError(f"RecBole files not found: {path}")
    files = AtomicFiles(stem)
    for kind in ("inter", "item", "user", "text"):
        candidate = folder / f"{stem}.{kind}"
        if candidate.is_file():
            setattr(files, kind, candidate)
    for stage in STAGES:
        candidate = folder / f"{stem}.{stage}.inter"
        if candidate.is_file():
            files.stages[stage] = candidate
    if files.inter is None and not files.stages:
        raise DataError(f"{folder}: no {stem}.inter or {stem}.train.inter")
    return files


def _stem(filename: str) -> str:
    stem = filename.removesuffix(".inter")
    for stage in STAGES:
        stem = stem.removesuffix(f".{stage}")
    return stem


def parse_header(text: str, path: str) -> list[Field]:
    fields: list[Field] = []
    for raw in text.split("\t"):
        name, sep, kind = raw.strip().rpartition(":")
        if not sep or not name or kind not in FIELD_TYPES:
            raise MalformedLineError(path, 1, f"header field {raw!r} is not 'name:type' with type in {FIELD_TYPES}")
        fields.append(Field(name, kind))
    return fields


def iter_rows(path: Path, report: LoadReport, on_error: ErrorPolicy) -> Iterator[tuple[int, dict[str, str], list[Field]]]:
    """(line_no, {field name: raw value}, header) for each well-formed row."""
    header: list[Field] | None = None
    for line_no, text in iter_lines(path, report=report, on_error=on_error):
        if header is None:
            header = parse_header(text, str(path))  # a bad header is fatal: nothing else parses
            report.lines_read -= 1
            continue
        values = text.split("\t")
        if len(values) != len(header):
            report.problem(MalformedLineError(str(path), line_no, f"expected {len(header)} tab-separated "
                                              f"fields, got {len(values)}"), on_error)
            continue
        yield line_no, {f.name: v for f, v in zip(header, values, strict=True)}, header



def read_header(path: Path) -> list[Field]:
    """The header of an atomic file (a bad or missing header is fatal)."""
    for _, text in iter_lines(path, report=LoadReport(), on_error="raise"):
        return parse_header(text, str(path))
    raise DataError(f"file is empty: {path}")
