"""Batch inputs and the per-request work every engine shares.

Inputs become ``Job``s (line number + validated request as a JSON-able dict, so they cross
process and Ray boundaries unchanged) or ``FailedLine``s. ``run_job`` is the one function that
turns a job into an output line, used by the local engine, its worker processes and the Ray
actors alike, so all engines write identical results."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from pydantic import ValidationError

from llmrank.batch.base import FailedLine, RequestSource
from llmrank.config_files import problems
from llmrank.errors import LlmrankError
from llmrank.records import RecRequest
from llmrank.serve.schemas import MAX_BODY_BYTES, BatchLineModel, FiltersModel, RecResponseModel

if TYPE_CHECKING:
    from llmrank.recommender import Recommender

log = logging.getLogger(__name__)

# the longest input line read (bytes, newline included): the body limit of POST /recommend.
# A longer line is one failed line, skipped in chunks instead of read whole.
MAX_LINE_BYTES = MAX_BODY_BYTES

# errors that say the model server is down or overloaded, not that the request is wrong:
# a line retries them (TRANSIENT_RETRIES times, TRANSIENT_BACKOFF s doubling), and many in a
# row stop the job (runner.MAX_CONSECUTIVE_UNAVAILABLE), which a resume with --retry-failed
# picks up once the server is back
TRANSIENT = ("ModelUnavailableError", "TimeoutError", "ConnectionError")
TRANSIENT_RETRIES = 2
TRANSIENT_BACKOFF = 1.0


@dataclass(frozen=True)
class Job:
    line: int
    request: dict[str, Any]  # a BatchLineModel as JSON-able dict, request_id always set


def fingerprint(path: str | Path) -> str:
    """sha256 of the input file: a resumed run must read the same requests."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fingerprint_requests(requests: Iterable[Any]) -> str:
    """sha256 of an iterable's requests in order, their request ids left out: RecRequests made
    again for a re-run get new random ids, and must still resume the run they belong to."""
    h = hashlib.sha256()
    for _, raw in _raw(requests):
        h.update(_canonical(raw).encode("utf-8") + b"\n")
    return h.hexdigest()


def _canonical(raw: Any) -> str:
    """One request as stable JSON text (keys sorted, request_id dropped)."""
    if isinstance(raw, BatchLineModel):
        body: Any = raw.model_dump(mode="json", exclude={"request_id"}, exclude_none=True)
    elif isinstance(raw, Mapping):
        body = {k: v for k, v in raw.items() if k != "request_id"}
    else:
        body = raw
    return json.dumps(body, sort_keys=True, default=str)


def _validation_reason(exc: ValidationError) -> str:
    return "invalid request: " + problems(exc.errors())


def line_from_record(req: RecRequest, candidates: list[str] | None = None) -> BatchLineModel:
    f = req.filters
    return BatchLineModel(
        user_id=req.user_id, history=req.history, text=req.text, k=req.k,
        n_candidates=req.n_candidates, explain=req.explain, explore=req.explore,
        request_id=req.request_id, candidates=candidates,
        filters=FiltersModel(allow=sorted(f.allow) if f.allow is not None else None,
                             deny=sorted(f.deny), exclude_seen=f.exclude_seen,
                             attributes={k: sorted(v) for k, v in f.attributes.items()}))


def iter_jobs(source: RequestSource, *, id_prefix: str | None = None,
              digest: Any = None) -> Iterator[Job | FailedLine]:
    """Jobs in input order; blank lines are skipped silently, bad ones become FailedLines.
    Requests without a request_id get ``<id_prefix>-<line>`` (deterministic, so a retried
    request logs the same impression id) or a random one without a prefix. A request_id is an
    idempotency key (the feedback store serves the logged slate again under it): the first
    valid line that gives an id holds it, and a later line that gives it again is a failed line
    (InvalidRequestError) instead of being served that slate. The ids given are kept in memory
    for this check (generated ones are unique by construction). A file's bytes, as read, go to
    ``digest`` (a hashlib object) when given: compared with the fingerprint taken before, it
    tells whether the file changed while it was read."""
    holders: dict[str, int] = {}  # request_id given in the input -> the line that holds it
    for line, raw in _raw(source, digest):
        if isinstance(raw, FailedLine):
            yield raw
            continue
        try:
            model = raw if isinstance(raw, BatchLineModel) else BatchLineModel.model_validate(raw)
        except ValidationError as exc:
            yield FailedLine(line, _validation_reason(exc), "ValidationError")
            continue
        if not model.request_id:
            rid = f"{id_prefix}-{line}" if id_prefix else RecRequest().request_id
            model = model.model_copy(update={"request_id": rid})
        elif (first := holders.setdefault(model.request_id, line)) != line:
            yield FailedLine(line, f"request_id {model.request_id!r} is already used by line {first}: "
                                   "give each request its own id (a request under a logged id is "
                                   "served that id's slate)", "InvalidRequestError")
            continue
        yield Job(line, model.model_dump(mode="json", exclude_none=True))


def _lines(fh: IO[bytes], digest: Any = None) -> Iterator[bytes | int]:
    """Each line of a binary file (LF-terminated, the last one maybe not), or for a line over
    MAX_LINE_BYTES its length in bytes: it is read a chunk at a time and never held whole.
    Every byte read goes to ``digest`` when given."""
    while data := fh.readline(MAX_LINE_BYTES + 1):
        if digest is not None:
            digest.update(data)
        if len(data) <= MAX_LINE_BYTES or data.endswith(b"\n"):
            yield data
            continue
        size = len(data)
        while data and not data.endswith(b"\n"):
            data = fh.readline(1 << 20)
            if digest is not None:
                digest.update(data)
            size += len(data)
        yield size


def _is_blank(data: bytes, first: bool) -> bool:
    return not data.decode("utf-8-sig" if first else "utf-8", errors="replace").strip()


def count_requests(path: str | Path) -> int:
    """The lines ``iter_jobs`` reads as requests (good or bad): the non-blank ones."""
    with open(path, "rb") as fh:
        return sum(1 for n, data in enumerate(_lines(fh), 1)
                   if isinstance(data, int) or not _is_blank(data, n == 1))


def _raw(source: RequestSource, digest: Any = None) -> Iterator[tuple[int, Any]]:
    if isinstance(source, (str, Path)):
        # read as bytes: JSON lines end at LF only (CRLF keeps a CR json ignores; a lone CR is
        # not a line break, or every later line number would be off), and each line is decoded
        # on its own, so a line that is not UTF-8 fails alone instead of being served with its
        # bytes replaced (an id or query silently changed); a byte-order mark opening the file
        # (editors on Windows write one) is not part of line 1's JSON
        with open(source, "rb") as fh:
            for n, data in enumerate(_lines(fh, digest), 1):
                if isinstance(data, int):
                    yield n, FailedLine(n, f"line too long: {data} bytes (at most {MAX_LINE_BYTES}, "
                                           "as the body of POST /recommend)", "MalformedLineError")
                    continue
                try:
                    text = data.decode("utf-8-sig" if n == 1 else "utf-8")
                except UnicodeDecodeError as exc:
                    yield n, FailedLine(n, f"not UTF-8: byte 0x{data[exc.start]:02x} at byte "
                                           f"{exc.start + 1} of the line", "MalformedLineError")
                    continue
                if not text.strip():
                    continue
                try:
                    raw = json.loads(text)
                except json.JSONDecodeError as exc:
                    raw = FailedLine(n, f"malformed JSON: {exc.msg} at column {exc.colno}",
                                     "MalformedLineError")
                except (ValueError, RecursionError) as exc:  # an over-long integer, deep nesting
                    raw = FailedLine(n, f"malformed JSON: {exc}", "MalformedLineError")
                yield n, raw
        return
    for n, item in enumerate(source, 1):
        if isinstance(item, RecRequest):
            try:  # a record the wire model rejects (k=0, ...) is one failed request
                item = line_from_record(item)
            except ValidationError as exc:
                item = FailedLine(n, _validation_reason(exc), "ValidationError")
        yield n, item


def run_job(recommender: Recommender, job: Job, *, retries: int | None = None,
            backoff: float | None = None) -> dict[str, Any]:
    """One output line: ``{"line", "ok": true, ...RecResponse}`` or ``{"line", "ok": false,
    "error", "reason"}``. Never raises for a bad request (only for KeyboardInterrupt and
    the like). A TRANSIENT failure is tried again ``retries`` times, waiting ``backoff``
    seconds, doubled each time (module defaults)."""
    wait = TRANSIENT_BACKOFF if backoff is None else backoff
    for _ in range(TRANSIENT_RETRIES if retries is None else retries):
        result = _run_once(recommender, job)
        if result["ok"] or result["error"] not in TRANSIENT:
            return result
        log.warning("batch line %d: %s (%s); trying again in %.1fs", job.line, result["error"],
                    result["reason"], wait)
        time.sleep(wait)
        wait *= 2
    return _run_once(recommender, job)


def _run_once(recommender: Recommender, job: Job) -> dict[str, Any]:
    try:
        model = BatchLineModel.model_validate(job.request)
        req = model.to_record()
        if model.candidates:
            out = RecResponseModel.from_record(recommender.rerank(req, model.candidates))
            out.note_dropped(model.candidates, recommender.dataset.items)  # as POST /rerank
        else:
            out = RecResponseModel.from_record(recommender.recommend(req))
        body = out.model_dump(mode="json")
        return {"line": job.line, "ok": True, **body}
    except LlmrankError as exc:
        return {"line": job.line, "ok": False, "error": type(exc).__name__, "reason": str(exc)}
    except ValidationError as exc:
        return {"line": job.line, "ok": False, "error": "ValidationError", "reason": _validation_reason(exc)}
    except Exception as exc:  # a bug or a backend failure on one request must not end the job
        log.exception("batch line %d failed", job.line)
        return {"line": job.line, "ok": False, "error": type(exc).__name__, "reason": str(exc)}


def with_line(failed: FailedLine, line: int) -> FailedLine:
    return replace(failed, line=line)
