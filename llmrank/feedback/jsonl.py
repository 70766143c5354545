"""Import and export a feedback store as JSON lines, one record a line:
``{"type": "impression", ...}`` or ``{"type": "event", ...}`` (fields as in records.py).

A malformed line is reported with its file and line number and then skipped and counted, or
raised, as the caller chooses (the same ErrorPolicy as the data loaders). Writes are idempotent
(event_id / request_id), so re-running an import after fixing a file never duplicates."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from llmrank.data.lines import ErrorPolicy, LoadReport, iter_lines
from llmrank.errors import FeedbackError, MalformedLineError
from llmrank.feedback.base import FeedbackStore
from llmrank.feedback.records import (
    FeedbackEvent,
    Impression,
    event_from_dict,
    event_to_dict,
    impression_from_dict,
    impression_to_dict,
)
from llmrank.jsontext import dumps

log = logging.getLogger(__name__)

BATCH = 500  # records per transaction on import: one commit per record would be fsync-bound


def export_jsonl(store: FeedbackStore, out: IO[str], *, what: str = "all",
                 since: float | None = None, until: float | None = None) -> dict[str, int]:
    """Write impressions then events (each in time order). ``what``: all|impressions|events."""
    if what not in ("all", "impressions", "events"):
        raise FeedbackError(f"export what must be all, impressions or events, got {what!r}")
    n_imp = n_ev = 0
    if what in ("all", "impressions"):
        for imp in store.impressions(since=since, until=until):
            out.write(dumps(impression_to_dict(imp)) + "\n")
            n_imp += 1
    if what in ("all", "events"):
        for ev in store.events(since=since, until=until):
            out.write(dumps(event_to_dict(ev)) + "\n")
            n_ev += 1
    return {"impressions": n_imp, "events": n_ev}


def parse_record(text: str, path: str, line_no: int) -> Impression | FeedbackEvent:
    """One JSON line to a typed record; MalformedLineError says what is wrong and where."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MalformedLineError(path, line_no, f"not JSON: {exc.msg}") from None
    except ValueError as exc:  # an integer of more than 4300 digits (Python's own limit)
        raise MalformedLineError(path, line_no, f"not JSON this reader accepts: {exc}") from None
    if not isinstance(obj, dict):
        raise MalformedLineError(path, line_no, "a line must be a JSON object")
    kind = obj.get("type")
    try:
        if kind == "impression":
            return impression_from_dict(obj)
        if kind == "event":
            return event_from_dict(obj)
    except FeedbackError as exc:
        raise MalformedLineError(path, line_no, str(exc)) from None
    raise MalformedLineError(path, line_no, f"type must be 'impression' or 'event', got {kind!r}")


def import_jsonl(store: FeedbackStore, path: str | Path, *, on_error: ErrorPolicy = "skip",
                 report: LoadReport | None = None) -> dict[str, int]:
    """Read a JSON-lines file into ``store``. Returns counts of records read and newly written;
    problems (file:line: reason) are in ``report``. A record the store refuses (a request_id
    already logged with another slate) is a bad line like a malformed one: the rest of its
    batch is still written. ``on_error="raise"`` stops at the first bad line with every record
    before it written and none after it."""
    report = report if report is not None else LoadReport()
    batch: list[tuple[int, Impression | FeedbackEvent]] = []
    counts = {"impressions": 0, "events": 0, "written": 0}

    def flush() -> None:
        pending = batch[:]
        batch.clear()  # also when a refused record raises below: flushed once, never again
        try:
            counts["written"] += _write(store, [rec for _, rec in pending])
        except FeedbackError:  # the batch was rolled back: write it record by record
            for line_no, rec in pending:
                try:
                    counts["written"] += _write(store, [rec])
                except FeedbackError as exc:
                    counts["impressions" if isinstance(rec, Impression) else "events"] -= 1
                    report.problem(MalformedLineError(str(path), line_no, str(exc)), on_error)

    try:
        for line_no, text in iter_lines(path, report=report, on_error=on_error):
            try:
                rec = parse_record(text, str(path), line_no)
            except MalformedLineError as err:
                report.problem(err, on_error)
                continue
            counts["impressions" if isinstance(rec, Impression) else "events"] += 1
            batch.append((line_no, rec))
            if len(batch) >= BATCH:
                flush()
    except MalformedLineError:  # 'raise' stops here: the lines before this one are written,
        flush()                 # as they are when the store refuses a record
        raise
    flush()
    counts["skipped"] = report.skipped
    log.info("imported %s from %s", counts, path)
    return counts


def _write(store: FeedbackStore, records: list[Impression | FeedbackEvent]) -> int:
    """Write ``records`` in one transaction (all or nothing); returns how many were new."""
    return store.log_many([r for r in records if isinstance(r, Impression)],
                          [r for r in records if isinstance(r, FeedbackEvent)])


def write_jsonl(rows: Iterable[dict[str, object]], out: IO[str]) -> int:
    n = 0
    for row in rows:
        out.write(json.dumps(row, ensure_ascii=False) + "\n")
        n += 1
    return n
