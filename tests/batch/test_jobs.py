"""Batch inputs: every bad line or request becomes a FailedLine with its line number, never
an exception that ends the job."""

from __future__ import annotations

from batch_fakes import GOOD, read_out, write_requests

from llmrank.batch.base import FailedLine
from llmrank.batch.jobs import Job, fingerprint_requests, iter_jobs
from llmrank.batch.local import LocalBatchEngine
from llmrank.records import RecRequest


def test_lines_json_cannot_decode_are_malformed_lines_not_a_crash(rec, tmp_path):
    """json.loads raises plain ValueError (a number past the int digit limit) and
    RecursionError (deep nesting), not only JSONDecodeError: either ended the whole job."""
    rows = [GOOD[0], '{"user_id": "u002", "k": ' + "1" * 5000 + "}", "[" * 100_000 + "]" * 100_000, GOOD[1]]
    src = write_requests(tmp_path / "req.jsonl", rows)
    items = list(iter_jobs(src))
    assert [type(x) for x in items] == [Job, FailedLine, FailedLine, Job]
    assert [(x.line, x.error) for x in items if isinstance(x, FailedLine)] == [
        (2, "MalformedLineError"), (3, "MalformedLineError")]
    assert all("malformed JSON" in x.reason for x in items if isinstance(x, FailedLine))
    report = LocalBatchEngine(rec).run(src, tmp_path / "out.jsonl")
    assert report.done == 2 and [f.line for f in report.failed] == [2, 3]
    assert sorted(read_out(tmp_path / "out.jsonl")) == [1, 4]


def test_an_invalid_record_in_an_iterable_is_a_failed_line(rec, tmp_path):
    """A RecRequest the wire model rejects (k=0) raised ValidationError out of the input
    reader: the job (and its fingerprint) died instead of reporting that one request."""
    reqs = [RecRequest(user_id="u001", k=2, request_id="a"), RecRequest(user_id="u002", k=0),
            RecRequest(user_id="u003", k=2, request_id="c")]
    items = list(iter_jobs(reqs))
    assert isinstance(items[1], FailedLine) and items[1].line == 2 and items[1].error == "ValidationError"
    assert "k:" in items[1].reason
    assert fingerprint_requests(reqs) == fingerprint_requests(reqs)
    report = LocalBatchEngine(rec).run(reqs, tmp_path / "out.jsonl")
    assert report.done == 2 and [(f.line, f.error) for f in report.failed] == [(2, "ValidationError")]
    assert [r["request_id"] for _, r in sorted(read_out(tmp_path / "out.jsonl").items())] == ["a", "c"]


def test_line_numbers_count_newlines_only(tmp_path):
    """Lines were also split at a lone carriage return (universal newlines): a raw CR inside
    one bad line shifted every later line number, so errors named the wrong lines."""
    src = tmp_path / "req.jsonl"
    src.write_bytes(b'{"user_id": "u001",\r "k": 2}\n{"text": "line\rbreak"}\n{"user_id": "u002"}\r\n')
    items = list(iter_jobs(src))
    assert [(type(x), x.line) for x in items] == [(Job, 1), (FailedLine, 2), (Job, 3)]
