"""Where results go, and how a job resumes: the output file *is* the checkpoint.

    <out>              one JSON line per finished request ({"line": n, ...RecResponse})
    <out>.errors.jsonl one JSON line per failed request ({"line", "error", "reason"})
    <out>.meta.json    the input fingerprint and config hash the output belongs to, and
                       ``complete`` (true once a run reached the end of the input, with counts)
    <out>.lock         locked (flock) while a job writes the output: a second job on the same
                       output is refused; the kernel drops the lock when its process dies

Lines are appended, flushed per line and fsynced per batch. A kill can leave at most a
partial last line, which ``open`` cuts off before resuming; every complete line is a finished
request and is never redone. A corrupt line anywhere else (not UTF-8, not a JSON object with a
positive integer ``line``, a second record of the same line) is dropped from its file, which is
rewritten atomically (temp file + rename), and its request is redone. A failed line stays
failed on resume unless ``retry_failed``: then it runs again, and the errors file is rewritten
when the run closes (a line that now succeeds leaves it, one that fails again is in it once).
While a job runs, retried and redone lines are appended after the lines already there (each run
writes in input order, and every record carries its input ``line``); when a run reaches the end
of the input (``mark_complete``), a file left out of order is put in input order: a streaming
merge of its ascending runs (one per run that appended out of order, so an output larger than
memory is never loaded), records kept byte for byte, written atomically (a kill leaves the old
file). A file already in order is not rewritten, nor read again: the sink tracks the order as it
reads and appends. So a complete output and errors file are in ascending ``line`` order.
Resuming against a different input or config is refused rather than silently mixing outputs."""

from __future__ import annotations

import heapq
import json
import logging
import os
import re
import time
from collections.abc import Iterable, Iterator
from itertools import pairwise
from pathlib import Path
from typing import IO, Any

from llmrank.atomic import atomic_write
from llmrank.batch.base import FailedLine
from llmrank.errors import ConfigError, DataError

# the way out of a refused resume, for Python callers and the `llmrank rerank` flag alike
_START_AGAIN = "start again with --overwrite (overwrite=True in Python) or choose another output path"

log = logging.getLogger(__name__)


def _lock(path: Path) -> IO[bytes] | None:
    """Hold an exclusive lock on ``path`` (created if absent) for as long as the returned
    handle is open, or raise DataError if another process holds it. The lock file stays on
    disk (deleting it would let two jobs lock two different files); the kernel releases the
    lock when the holder exits, even by SIGKILL. No-op where fcntl is missing (Windows)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return None
    fh = open(path, "ab")  # noqa: SIM115 - held until close()
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        raise DataError(f"another job is writing {path.with_suffix('')} (it holds {path.name}); "
                        "wait for it to end or choose another output path") from None
    return fh


def _repair_tail(path: Path) -> None:
    """Cut a partial last line (a write interrupted by a kill)."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as fh:  # read from the end: the output may be far larger than memory
        size = end = fh.seek(0, os.SEEK_END)
        keep = 0
        while end > 0:
            start = max(0, end - (1 << 16))
            fh.seek(start)
            cut = fh.read(end - start).rfind(b"\n")
            if cut >= 0:
                keep = start + cut + 1
                break
            end = start
        if keep == size:
            return
        log.warning("%s: dropping a partial last line (%d bytes) from an interrupted run",
                    path, size - keep)
        fh.truncate(keep)


# how run_job records start: recovers the input line of a torn record for the warning
_LINE_PREFIX = re.compile(rb'^\{"line": (\d+)[,}]')


def _record(raw: bytes) -> dict[str, Any] | None:
    """One record of an output or errors file, or None if it is corrupt: not UTF-8, not a
    JSON object, or without a positive integer ``line``."""
    try:
        rec = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    line = rec.get("line") if isinstance(rec, dict) else None
    if isinstance(line, bool) or not isinstance(line, int) or line < 1:
        return None
    return rec


def _scan(path: Path) -> Iterator[tuple[int, bytes, dict[str, Any] | None]]:
    """(file line number, raw bytes, record or None) one line at a time: an output may be huge."""
    if not path.exists():
        return
    with open(path, "rb") as fh:
        for n, raw in enumerate(fh, 1):
            yield n, raw, _record(raw)


def _rewrite(path: Path, lines: Iterable[bytes]) -> None:
    """Replace a file by ``lines`` atomically: a kill leaves the old file or the new one."""
    with atomic_write(path, "wb") as fh:
        fh.writelines(lines)


def _line_of(raw: bytes) -> int | None:
    """The input line of a record (its prefix as run_job writes it, else the parsed record),
    or None if it is corrupt."""
    if m := _LINE_PREFIX.match(raw):
        return int(m[1])
    rec = _record(raw)
    return None if rec is None else int(rec["line"])


def _ascending_runs(path: Path) -> list[tuple[int, int]] | None:
    """Byte ranges ``[start, end)`` of the ascending runs of records in ``path`` (a new run
    starts where ``line`` decreases), in one streaming pass; None if a record is corrupt."""
    bounds = [0]
    prev = pos = 0
    with open(path, "rb") as fh:
        for raw in fh:
            line = _line_of(raw)
            if line is None:
                return None
            if line < prev:
                bounds.append(pos)
            prev = line
            pos += len(raw)
    bounds.append(pos)
    return list(pairwise(bounds))


def _read_range(fh: IO[bytes], start: int, end: int, chunk: int) -> Iterator[bytes]:
    """The lines (with their newline) of bytes ``[start, end)`` of ``fh``, read ``chunk``
    bytes at a time: the readers of all runs share one file handle, each seeking to its own
    position, so many runs need neither many open files nor much memory."""
    pos, parts = start, []  # parts: the start of a line the next chunk ends
    while pos < end:
        fh.seek(pos)
        data = fh.read(min(chunk, end - pos))
        if not data:  # the file shrank under us: end the run
            break
        pos += len(data)
        cut = data.rfind(b"\n")
        if cut < 0:  # a line longer than the chunk
            parts.append(data)
            continue
        parts.append(data[:cut + 1])
        *lines, _ = b"".join(parts).split(b"\n")  # _: b"", the block ends at a newline
        parts = [data[cut + 1:]]
        for text in lines:
            yield text + b"\n"
    if rest := b"".join(parts):
        yield rest


def _sort_by_line(path: Path) -> bool:
    """Put a file of records in ascending ``line`` order if it is not: a k-way merge of its
    ascending runs (stable: records of one line keep their file order), streamed, records kept
    byte for byte, written atomically. True if the file was rewritten."""
    if not path.exists():
        return False
    runs = _ascending_runs(path)
    if runs is None:
        log.warning("%s: a corrupt record; left out of line order (a resume drops it)", path)
        return False
    if len(runs) < 2:
        return False
    log.info("%s: putting %d runs of records in input order", path, len(runs))
    chunk = max(1 << 12, min(1 << 16, (16 << 20) // len(runs)))  # buffers: a few MiB at most
    # src is closed before atomic_write renames the merged file over it
    with atomic_write(path, "wb") as out, open(path, "rb", buffering=0) as src:
        readers = [_read_range(src, start, end, chunk) for start, end in runs]
        out.writelines(heapq.merge(*readers, key=lambda raw: _line_of(raw) or 0))  # none corrupt
    return True


class _Order:
    """Whether a file's records are in ascending ``line`` order, followed as the sink reads and
    appends them (``last``: the line of the last record), so checking costs no extra pass."""

    __slots__ = ("ascending", "last")

    def __init__(self, last: int = 0) -> None:
        self.last, self.ascending = last, True

    def follow(self, line: int) -> None:
        self.ascending = self.ascending and line >= self.last
        self.last = line


def _numbers(values: list[int], most: int = 10) -> str:
    shown = ", ".join(map(str, values[:most]))
    return shown + (f" (+{len(values) - most} more)" if len(values) > most else "")


def _warn_dropped(path: Path, bad: list[int], lost: list[int]) -> None:
    held = f", holding input line(s) {_numbers(lost)}" if lost else ""
    log.warning("%s: dropping %d corrupt line%s (line%s %s of the file%s); the requests they "
                "held will be redone", path, len(bad), "s" if len(bad) > 1 else "",
                "s" if len(bad) > 1 else "", _numbers(bad), held)


class ResultSink:
    def __init__(self, out: str | Path, *, input_key: str | None, config_key: str,
                 engine: str, overwrite: bool = False, retry_failed: bool = False) -> None:
        self.path = Path(out)
        self.errors_path = self.path.with_name(self.path.name + ".errors.jsonl")
        self.meta_path = self.path.with_name(self.path.name + ".meta.json")
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.input_key = input_key
        self.config_key = config_key
        self.engine = engine
        self.overwrite = overwrite
        self.retry_failed = retry_failed
        self.done: set[int] = set()
        self.failed: dict[int, FailedLine] = {}
        self._retry: set[int] = set()  # failed lines of earlier runs that run again now
        self._errors_stale = False  # the errors file holds superseded records: rewrite on close
        # whether each file is in line order: mark_complete sorts one that is not
        self._out_order, self._err_order = _Order(), _Order()
        self._out: IO[str] | None = None
        self._err: IO[str] | None = None
        self._lock: IO[bytes] | None = None

    # ---- resume ------------------------------------------------------------------------
    def open(self) -> None:
        """Prepare the files: fresh, overwritten, or resumed (reading what is finished). The
        output is locked first: nothing is read, cut or deleted while another job writes it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = _lock(self.lock_path)
        try:
            self._open()
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        """Unlock the output (another job may open it now)."""
        if self._lock is not None:
            self._lock.close()  # closing the handle releases the flock
            self._lock = None

    def _open(self) -> None:
        exists = self.path.exists() or self.errors_path.exists()
        if exists and self.overwrite:
            for p in (self.path, self.errors_path, self.meta_path):
                p.unlink(missing_ok=True)
        elif exists:
            self._check_meta()
            for p in (self.path, self.errors_path):
                _repair_tail(p)
            self._read_output()
            self._read_errors()
            if self.retry_failed:
                self._retry = set(self.failed)
        if not exists or self.overwrite:  # a meta file left without its output is stale
            meta = {"input": self.input_key, "config": self.config_key, "engine": self.engine,
                    "created": time.time()}
        else:
            meta = json.loads(self.meta_path.read_text(encoding="utf-8"))
        self._write_meta({**meta, "complete": False})  # until a run reaches the end of the input
        # kept open across calls (closed in close()): one append stream per file
        self._out = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        self._err = open(self.errors_path, "a", encoding="utf-8")  # noqa: SIM115

    def _read_output(self) -> None:
        """Collect the finished lines; corrupt or repeated records are cut out of the output,
        so a redone request is never next to its corrupt record."""
        bad: list[int] = []  # file line numbers
        lost: set[int] = set()  # input lines a torn record still names
        for n, raw, rec in _scan(self.path):
            if rec is None or rec["line"] in self.done:
                bad.append(n)
                if rec is None and (m := _LINE_PREFIX.match(raw)):
                    lost.add(int(m[1]))
            else:
                self.done.add(rec["line"])
                self._out_order.follow(rec["line"])
        if bad:
            _warn_dropped(self.path, bad, sorted(lost - self.done))
            drop = set(bad)
            _rewrite(self.path, (raw for n, raw, _ in _scan(self.path) if n not in drop))

    def _read_errors(self) -> None:
        """Collect the failed lines (the last record of each, none that later succeeded); a
        corrupt, repeated or superseded record makes the errors file be rewritten."""
        bad: list[int] = []
        stale = False
        for n, _, rec in _scan(self.errors_path):
            if rec is None:
                bad.append(n)
                continue
            line = rec["line"]
            self._err_order.follow(line)
            stale = stale or line in self.done or line in self.failed
            if line not in self.done:
                self.failed[line] = FailedLine(line, str(rec.get("reason", "")), str(rec.get("error", "")))
        if bad:
            _warn_dropped(self.errors_path, bad, [])
        if bad or stale:
            self._rewrite_errors()

    def _rewrite_errors(self) -> None:
        """The errors file as ``failed`` holds it: one record per failed line, in line order."""
        _rewrite(self.errors_path, (self._dumps(self._error_record(f)).encode("utf-8")
                                    for f in sorted(self.failed.values(), key=lambda f: f.line)))
        self._err_order = _Order(max(self.failed, default=0))

    def _check_meta(self) -> None:
        """Refuse to resume into an output of other requests (DataError) or another config
        (ConfigError, exit 2 as every config problem); the advice names the CLI flag too."""
        if not self.meta_path.exists():
            raise DataError(f"{self.path} exists but is not a llmrank batch output (no "
                            f"{self.meta_path.name}); {_START_AGAIN}")
        meta = json.loads(self.meta_path.read_text(encoding="utf-8"))
        if meta.get("input") != self.input_key:
            raise DataError(f"{self.path} belongs to a different input (file or requests); {_START_AGAIN}")
        if meta.get("config") != self.config_key:
            raise ConfigError(f"{self.path} was written with a different config; {_START_AGAIN}")

    def _write_meta(self, meta: dict[str, Any]) -> None:
        with atomic_write(self.meta_path) as fh:  # never a half-written meta file
            fh.write(json.dumps(meta, indent=2))

    def mark_complete(self, total: int) -> None:
        """Every input line is in the output or the errors file: readers can tell a finished
        output from one cut short by a crash (``complete`` stays false). A file out of line
        order (retried or redone lines appended) is sorted first; one in order is left as is."""
        if not self._out_order.ascending:
            _sort_by_line(self.path)
            self._out_order = _Order(max(self.done, default=0))
        if not self._err_order.ascending:
            _sort_by_line(self.errors_path)
            self._err_order = _Order(max(self.failed, default=0))
        meta = json.loads(self.meta_path.read_text(encoding="utf-8"))
        self._write_meta({**meta, "complete": True, "total": total, "done": len(self.done),
                          "failed": len(self.failed)})

    def finished(self, line: int) -> bool:
        return line in self.done or (line in self.failed and line not in self._retry)

    # ---- writing -----------------------------------------------------------------------
    def write(self, record: dict[str, Any]) -> None:
        """Append one run_job() record to the output or the errors file."""
        line = int(record["line"])
        if record.get("ok", True):
            body = {k: v for k, v in record.items() if k != "ok"}
            self._append(self._out, body)
            self._out_order.follow(line)
            self.done.add(line)
            if self.failed.pop(line, None) is not None:  # a retried line succeeded
                self._errors_stale = True
        else:
            self.fail(FailedLine(line, str(record.get("reason", "")), str(record.get("error", "Error"))))

    def fail(self, failed: FailedLine) -> None:
        self._append(self._err, self._error_record(failed))
        self._err_order.follow(failed.line)
        self._errors_stale = self._errors_stale or failed.line in self.failed  # failed again
        self.failed[failed.line] = failed

    @staticmethod
    def _error_record(failed: FailedLine) -> dict[str, Any]:
        return {"line": failed.line, "error": failed.error, "reason": failed.reason}

    @staticmethod
    def _dumps(obj: dict[str, Any]) -> str:
        return json.dumps(obj, ensure_ascii=False, allow_nan=False) + "\n"

    @classmethod
    def _append(cls, fh: IO[str] | None, obj: dict[str, Any]) -> None:
        if fh is None:
            raise RuntimeError("ResultSink.open() was not called")
        fh.write(cls._dumps(obj))
        fh.flush()

    def checkpoint(self) -> None:
        """Make everything written so far durable (one fsync per batch, not per line)."""
        for fh in (self._out, self._err):
            if fh is not None:
                fh.flush()
                os.fsync(fh.fileno())

    def close(self, *, keep_lock: bool = False) -> None:
        """Sync and close the files; the output stays locked with ``keep_lock`` (for
        ``mark_complete``) until ``release()``."""
        self.checkpoint()
        for fh in (self._out, self._err):
            if fh is not None:
                fh.close()
        self._out = self._err = None
        try:
            if self._errors_stale:  # after a retry: one record per line still failed
                self._rewrite_errors()
                self._errors_stale = False
        finally:
            if not keep_lock:
                self.release()
