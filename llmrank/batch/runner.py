"""The bookkeeping every engine shares: open (or resume) the output, hand out the pending
jobs, write results and failures, keep the report. Engines differ only in how they turn
pending jobs into results (in process, a worker pool, Ray actors)."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator, Sequence, Sized
from pathlib import Path
from types import TracebackType
from typing import Any

from llmrank.batch.base import BatchProgress, BatchReport, FailedLine, RequestSource
from llmrank.batch.jobs import (
    TRANSIENT,
    Job,
    count_requests,
    fingerprint,
    fingerprint_requests,
    iter_jobs,
)
from llmrank.batch.sink import ResultSink
from llmrank.errors import DataError, ModelUnavailableError

log = logging.getLogger(__name__)


# TRANSIENT failures in a row that stop a job (an outage, not a few bad requests)
MAX_CONSECUTIVE_UNAVAILABLE = 20


def config_key(config: Any) -> str:
    """A short hash of the deployment config (a resumed run must use the same one)."""
    from llmrank.config import load_config

    cfg = load_config(config) if config is not None else load_config()
    return hashlib.sha256(cfg.model_dump_json().encode()).hexdigest()[:16]


def _refuse_input_as_output(source: Path, sink: ResultSink) -> None:
    """An output file that is the input would be appended to, or deleted by overwrite."""
    for p in (sink.path, sink.errors_path, sink.meta_path):
        if p.exists() and p.samefile(source):
            raise DataError(f"{p} is the input {source}; choose another output path")


class BatchRun:
    """One run of one engine over one input (a context manager). An iterable input is
    fingerprinted like a file, so a different one is never resumed into the same output; a
    one-pass iterable (a generator) is read into memory for that: a JSON-lines file streams."""

    def __init__(self, engine: str, source: RequestSource, out: str | Path, *, config: Any,
                 overwrite: bool = False, retry_failed: bool = False,
                 progress: BatchProgress | None = None) -> None:
        is_path = isinstance(source, (str, Path))
        src_path: Path | None = None
        if isinstance(source, (str, Path)):  # the output belongs to this input: a file's bytes...
            key = fingerprint(source)
            src_path = Path(source)
        else:  # ...or an iterable's requests (a one-pass iterable is read once: fingerprinted, then run)
            source = source if isinstance(source, Sequence) else list(source)
            key = fingerprint_requests(source)
        self.source = source
        self.src_path, self.key = src_path, key
        self.prefix = key[:12] if key else None
        self.sink = ResultSink(out, input_key=key, config_key=config_key(config), engine=engine,
                               overwrite=overwrite, retry_failed=retry_failed)
        if src_path is not None:
            _refuse_input_as_output(src_path, self.sink)
        self.report = BatchReport(engine, str(self.sink.path), str(self.sink.errors_path))
        self.total: int | None = count_requests(source) if is_path else (  # type: ignore[arg-type]
            len(source) if isinstance(source, Sized) else None)
        self.progress = progress
        self._start = 0.0
        self._exhausted = False  # pending() reached the end of the input
        self._shown = 0  # the count the progress callback last saw
        self._unavailable = 0  # TRANSIENT failures in a row

    def __enter__(self) -> BatchRun:
        self.sink.open()
        self._start = time.perf_counter()
        if self.sink.done or self.sink.failed:
            log.info("resuming %s: %d done, %d failed before", self.sink.path,
                     len(self.sink.done), len(self.sink.failed))
        return self

    def pending(self) -> Iterator[Job]:
        """Jobs not finished by an earlier run; bad input lines are recorded on the way."""
        seen = 0
        read = hashlib.sha256() if self.src_path is not None else None
        for job in iter_jobs(self.source, id_prefix=self.prefix, digest=read):
            seen += 1
            if self.sink.finished(job.line):
                self.report.resumed += 1
                continue
            if isinstance(job, FailedLine):
                self.sink.fail(job)
                self._tick()
                continue
            yield job
        if read is not None and read.hexdigest() != self.key:
            # lines read after the change were served from another input than the one this
            # output belongs to: never mark it complete (a resume then refuses the changed file)
            raise DataError(f"{self.src_path} changed while the job ran (its bytes are not those "
                            f"fingerprinted at the start), so {self.sink.path} may mix two versions "
                            f"of it; start again with --overwrite once the input is final")
        self.report.total = seen
        self._exhausted = True
        if self.progress is not None and self._shown != self.report.processed + self.report.resumed:
            # resumed lines are not ticked one by one: a resume with nothing left to do (or
            # whose last lines were finished before) still ends with the bar at its total
            self._shown = self.report.processed + self.report.resumed
            self.progress(self._shown, self.total)

    def record(self, result: dict[str, Any]) -> None:
        self.sink.write(result)
        self._tick()
        if not result.get("ok") and result.get("error") in TRANSIENT:
            self._unavailable += 1
            if self._unavailable >= MAX_CONSECUTIVE_UNAVAILABLE:
                # an outage: failing (and recording) every remaining line helps nobody
                raise ModelUnavailableError(
                    f"stopped after {self._unavailable} requests in a row failed with "
                    f"{result['error']} ({result.get('reason', '')}); the model server seems down: "
                    "run the job again with --retry-failed once it is back (done lines are kept)")
        else:
            self._unavailable = 0

    def checkpoint(self) -> None:
        self.sink.checkpoint()

    def _tick(self) -> None:
        self.report.processed += 1
        if self.progress is not None:
            self._shown = self.report.processed + self.report.resumed
            self.progress(self._shown, self.total)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:  # the output stays locked until it is complete: no other job reads it half sorted
            self.sink.close(keep_lock=True)
            r = self.report
            r.seconds = time.perf_counter() - self._start
            r.done = len(self.sink.done)
            r.total = r.total or self.total or 0
            r.failed = sorted(self.sink.failed.values(), key=lambda f: f.line)
            if exc_type is None and self._exhausted:
                self.sink.mark_complete(r.total)
        finally:
            self.sink.release()
        if exc_type is not None:
            log.warning("batch run interrupted (%s) after %d requests; re-run to resume",
                        exc_type.__name__, r.processed)
        else:
            log.info("batch run: %d done, %d failed, %d resumed, %.1f req/s", r.done, len(r.failed),
                     r.resumed, r.throughput)
