"""Line-level reading with a caller-chosen policy for malformed input.

Every loader reads through here so that a bad line is reported the same way everywhere:
with its file and 1-based line number, then skipped and counted (``on_error="skip"``) or
raised as MalformedLineError (``on_error="raise"``). Files ending in ``.gz`` are read
through gzip transparently, so the line numbers are those of the decompressed text."""

from __future__ import annotations

import ast
import csv
import gzip
import json
import logging
import math
import re
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from llmrank.errors import DataError, MalformedLineError

log = logging.getLogger(__name__)

UTF8_BOM = b"\xef\xbb\xbf"
# for files whose releases differ (MovieLens .dat: ML-1M is latin-1, UTF-8 re-exports exist):
# each line is UTF-8 when it decodes as such, else latin-1 (which decodes any byte). A latin-1
# accent alone ("é" = E9) is never valid UTF-8, so the two cannot be confused in titles.
UTF8_OR_LATIN1 = "utf-8|latin-1"
# what reading a corrupt, truncated or not-really-gzip '.gz' file raises
GZIP_ERRORS = (EOFError, zlib.error, gzip.BadGzipFile)

ErrorPolicy = Literal["skip", "raise"]
MAX_REPORTED = 20
# JSON and Python escapes that can decode to a lone UTF-16 surrogate (a truncated emoji such
# as "\\ud83d" in real Amazon metadata): only lines holding one are checked
_SURROGATE_ESCAPE = re.compile(r"\\(?:u|U0000)[dD][89a-fA-F]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass
class LoadReport:
    """What a load did: where from, which loader, lines read and skipped, the first problems
    (with locations), the preprocessing steps applied and how long it took."""

    files: list[str] = field(default_factory=list)
    lines_read: int = 0
    skipped: int = 0
    repaired: int = 0  # lines whose lone UTF-16 surrogates were replaced by U+FFFD
    problems: list[str] = field(default_factory=list)
    source: str = ""
    format: str = ""
    steps: list[str] = field(default_factory=list)
    seconds: float = 0.0
    # False when the caller shows ``problems`` itself (``feedback import``): the per-line
    # warning printed each skipped line a second time
    log_problems: bool = field(default=True, compare=False)

    def problem(self, err: MalformedLineError, policy: ErrorPolicy) -> None:
        """Raise ``err`` under the 'raise' policy; otherwise count it and keep the first few."""
        if policy == "raise":
            raise err
        self.skipped += 1
        if len(self.problems) < MAX_REPORTED:
            self.problems.append(str(err))
        if self.log_problems:
            log.warning("skipping malformed line: %s", err)

    def merge(self, other: LoadReport) -> None:
        self.files += other.files
        self.lines_read += other.lines_read
        self.skipped += other.skipped
        self.repaired += other.repaired
        self.problems += other.problems[: max(0, MAX_REPORTED - len(self.problems))]
        self.steps += other.steps

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        del out["log_problems"]  # how it was shown, not what the load did
        return out


def open_binary(path: Path) -> IO[bytes]:
    """Open a file for binary reading, through gzip when its name ends in ``.gz``."""
    if path.suffix == ".gz":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


def check_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"file not found: {path}")
    return path


def _decode(raw: bytes, encoding: str) -> str:
    if encoding != UTF8_OR_LATIN1:
        return raw.decode(encoding)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def iter_lines(
    path: str | Path,
    *,
    encoding: str = "utf-8",
    report: LoadReport,
    on_error: ErrorPolicy = "skip",
    skip_header: bool = False,
) -> Iterator[tuple[int, str]]:
    """Yield (line_no, text) for non-empty lines, decoding each line on its own so that one
    badly encoded line is reported instead of failing the file. An empty file is an error
    (a loader that silently returns nothing hides a wrong path or a failed download).
    ``skip_header`` skips the first non-blank line: after a leading blank line the header is
    on line 2, and reading it as data would make it a malformed (or, worse, a valid) row."""
    path = check_file(path)
    report.files.append(str(path))
    any_line = False
    header_pending = skip_header
    line_no = 0
    broken = ""  # why a gzip file stopped before its end
    with open_binary(path) as fh:
        try:
            for line_no, raw in enumerate(fh, start=1):
                raw = raw.rstrip(b"\r\n")
                if line_no == 1 and raw.startswith(UTF8_BOM):
                    # a UTF-8 BOM whatever the encoding: in latin-1 it decodes to 'ï»¿', which
                    # would be glued to the first id
                    raw = raw[len(UTF8_BOM):]
                if not raw.strip():
                    continue
                try:
                    text = _decode(raw, encoding)
                except UnicodeDecodeError as exc:
                    any_line, header_pending = True, False
                    report.problem(MalformedLineError(str(path), line_no, f"not valid {encoding}: {exc.reason}"), on_error)
                    continue
                if line_no == 1 and text.startswith("\ufeff"):
                    text = text[1:]
                    if not text.strip():
                        continue
                any_line = True
                if header_pending:
                    header_pending = False
                    continue
                report.lines_read += 1
                yield line_no, text
        except GZIP_ERRORS as exc:
            # a truncated or corrupt archive cannot be resynchronised: report and stop here
            broken = f"corrupt or truncated gzip data: {exc}"
            report.problem(MalformedLineError(str(path), line_no + 1, broken), on_error)
    if not any_line:
        raise DataError(f"{path}: {broken}" if broken else f"file is empty: {path}")


def require_events(n_events: int, source: str | Path, report: LoadReport, *, skipped_before: int = 0) -> None:
    """Raise DataError when a load found no interactions. An empty dataset fails later and
    far from its cause (a header-only file after a truncated download, every line malformed
    under 'skip'), so every loader stops here and says which file and how many lines it
    skipped (``skipped_before``: the report's count before that file was read)."""
    if n_events:
        return
    skipped = report.skipped - skipped_before
    why = f"every data line was malformed: {skipped} skipped" if skipped else "it holds no data rows"
    raise DataError(f"{source}: no valid interactions ({why})")


def split_fields(
    text: str, *, sep: str, n_fields: int | None, min_fields: int | None = None,
    path: str, line_no: int, quoted: bool = False,
) -> list[str]:
    """Split one line; raise MalformedLineError when the field count is wrong, which is how a
    truncated line or a wrong delimiter shows up."""
    fields = next(csv.reader([text], delimiter=sep)) if quoted else text.split(sep)
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


def finite_rating(rating: float, raw: Any, path: str, line_no: int) -> float:
    """``rating`` unless it is infinite, which would pass as a score (and make JSON output
    invalid); NaN is kept, it means 'unrated' like an empty rating."""
    if math.isinf(rating):
        raise MalformedLineError(path, line_no, f"rating is not a finite number: {raw!r}")
    return rating


def parse_float(value: str, *, what: str, path: str, line_no: int) -> float:
    try:
        return float(value)
    except ValueError:
        raise MalformedLineError(path, line_no, f"{what} is not a number: {value!r}") from None


def peek_objects(path: Path, limit: int) -> Iterator[dict[str, Any]]:
    """The JSON objects among the first ``limit`` lines of a JSON-lines file, skipping lines
    that are not one: a quiet look for format detection (the real pass reports bad lines,
    and a gzip file that breaks off). DataError when not even the first line decompresses."""
    with open_binary(path) as fh:
        started = False
        try:
            for _, raw in zip(range(limit), fh, strict=False):
                started = True
                try:
                    obj = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(obj, dict):
                    yield without_surrogates(obj)
        except GZIP_ERRORS as exc:
            if not started:
                raise DataError(f"{path}: corrupt or truncated gzip data: {exc}") from exc


def iter_records(
    path: str | Path,
    *,
    report: LoadReport,
    on_error: ErrorPolicy = "skip",
    python_literals: bool = False,
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line_no, object) for a JSON-lines file (optionally gzipped).

    With ``python_literals`` a line that is not JSON is tried as a Python dict literal
    (``{'asin': 'X', ...}``), which is how some Amazon 2014/2018 metadata files are written.
    ``ast.literal_eval`` only builds literals, so this never executes code from the file."""
    path = check_file(path)
    literal_mode = False  # once a file proves to be Python literals, try that first
    repaired_before = report.repaired
    for line_no, text in iter_lines(path, report=report, on_error=on_error):
        ok, obj, how = _parse_record(text, python_literals, literal_mode)
        if not ok:
            report.problem(MalformedLineError(str(path), line_no, f"not a valid JSON record ({how})"), on_error)
            continue
        if how == "literal":
            literal_mode = True
        if not isinstance(obj, dict):
            report.problem(MalformedLineError(str(path), line_no, f"expected a JSON object, got {type(obj).__name__}"), on_error)
            continue
        if _SURROGATE_ESCAPE.search(text):
            obj = _repair(obj, report)
        yield line_no, obj
    if report.repaired > repaired_before:
        log.warning("%s: %d lines held lone UTF-16 surrogates (truncated emoji); replaced by U+FFFD",
                    path, report.repaired - repaired_before)


def without_surrogates(value: Any) -> Any:
    """``value`` (a parsed record) with every lone UTF-16 surrogate replaced by U+FFFD. A
    JSON escape such as "\\ud83d" without its pair decodes to one, and a string holding it
    cannot be encoded as UTF-8: it would crash the embedding cache and Parquet much later."""
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {without_surrogates(k): without_surrogates(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(without_surrogates(v) for v in value)
    return value


def _repair(obj: dict[str, Any], report: LoadReport) -> dict[str, Any]:
    """``obj`` without lone surrogates, counted in ``report`` when it held any."""
    fixed: dict[str, Any] = without_surrogates(obj)
    if fixed != obj:
        report.repaired += 1
    return fixed


_PARSE_ERRORS = (ValueError, SyntaxError, MemoryError, RecursionError, TypeError)


def _parse_record(text: str, python_literals: bool, literal_first: bool) -> tuple[bool, Any, str]:
    """(True, object, 'json' or 'literal'), or (False, None, reason) when nothing parses."""
    order = ["literal", "json"] if literal_first else ["json", "literal"]
    if not python_literals:
        order = ["json"]
    reason = ""
    for how in order:
        try:
            if how == "json":
                return True, json.loads(text), how
            return True, ast.literal_eval(text), how
        except _PARSE_ERRORS as exc:
            if not reason:
                reason = exc.msg if isinstance(exc, json.JSONDecodeError) else type(exc).__name__
    return False, None, reason
