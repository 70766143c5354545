"""Line-level reading with a caller-chosen policy for malformed input.

Every loader reads through here so that a bad line is reported the same way everywhere:
with its file and 1-based line number, then skipped and counted (``on_error="skip"``) or
raised as MalformedLineError (``on_error="raise"``)."""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from llmrank.errors import DataError, MalformedLineError

log = logging.getLogger(__name__)

ErrorPolicy = Literal["skip", "raise"]
MAX_REPORTED = 20


@dataclass
class LoadReport:
    """What a load did: lines read, lines skipped, and the first problems with locations."""

    files: list[str] = field(default_factory=list)
    lines_read: int = 0
    skipped: int = 0
    problems: list[str] = field(default_factory=list)

    def problem(self, err: MalformedLineError, policy: ErrorPolicy) -> None:
        if policy == "raise":
            raise err
        self.skipped += 1
        if len(self.problems) < MAX_REPORTED:
            self.problems.append(str(err))
        log.warning("skipping malformed line: %s", err)

    def merge(self, other: LoadReport) -> None:
        self.files += other.files
        self.lines_read += other.lines_read
        self.skipped += other.skipped
        self.problems += other.problems[: max(0, MAX_REPORTED - len(self.problems))]


def iter_lines(
    path: str | Path,
    *,
    encoding: str = "utf-8",
    report: LoadReport,
    on_error: ErrorPolicy = "skip",
    skip_header: bool = False,
) -> Iterator[tuple[int, str]]:
    """Yield (line_no, text) for non-empty lines, decoding each line on its own so that one
    badly encoded line is reported instead of failing the file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"file not found: {path}")
    report.files.append(str(path))
    any_line = False
    with path.open("rb") as fh:
        for line_no, raw in enumerate(fh, start=1):
            raw = raw.rstrip(b"\r\n")
            if not raw.strip():
                continue
            try:
                text = raw.decode(encoding)
            except UnicodeDecodeError as exc:
                report.problem(MalformedLineError(str(path), line_no, f"not valid {encoding}: {exc.reason}"), on_error)
                continue
            if line_no == 1 and text.startswith("\ufeff"):
                text = text[1:]
            any_line = True
            if skip_header and line_no == 1:
                continue
            report.lines_read += 1
            yield line_no, text
    if not any_line:
        raise DataError(f"file is empty: {path}")


def split_fields(
    text: str, *, sep: str, n_fields: int | None, min_fields: int | None = None,
    path: str, line_no: int, quoted: bool = False,
) -> list[str]:
    """Split one line; raise MalformedLineError when the field count is wrong, which is how a
    truncated line or a wrong delimiter shows up."""
    if quoted:
        fields = next(csv.reader([text], delimiter=sep))
    else:
        fields = text.split(sep)
    lo = min_fields if min_fields is not None else n_fields
    if lo is not None and len(fields) < lo:
        raise MalformedLineError(path, line_no, f"expected {n_fields or lo} fields separated by {sep!r}, got {len(fields)}")
    if n_fields is not None and min_fields is None and len(fields) > n_fields:
        raise MalformedLineError(path, line_no, f"expected {n_fields} fields separated by {sep!r}, got {len(fields)}")
    return fields


def parse_int(value: str, *, what: str, path: str, line_no: int) -> int:
    try:
        return int(value)
    except ValueError:
        try:
            f = float(value)
        except ValueError:
            raise MalformedLineError(path, line_no, f"{what} is not a number: {value!r}") from None
        if not f.is_integer():
            raise MalformedLineError(path, line_no, f"{what} is not an integer: {value!r}") from None
        return int(f)


def parse_float(value: str, *, what: str, path: str, line_no: int) -> float:
    try:
        return float(value)
    except ValueError:
        raise MalformedLineError(path, line_no, f"{what} is not a number: {value!r}") from None
