"""Batch input lines must be UTF-8: a line that is not is one failed line, never served with
its bytes replaced (a request id, history item or query silently changed)."""

from __future__ import annotations

from batch_fakes import read_out

from llmrank.batch.base import FailedLine
from llmrank.batch.jobs import Job, iter_jobs
from llmrank.batch.local import LocalBatchEngine


def test_a_line_that_is_not_utf8_fails_alone_and_is_not_served_mangled(rec, tmp_path):
    src = tmp_path / "req.jsonl"
    src.write_bytes(b'{"user_id": "u001", "k": 2}\n'
                    b'{"history": ["c001", "c0\xff2"], "text": "caf\xe9 space", "k": 2, "request_id": "r\xe9q"}\n'
                    b'\n'
                    b'{"user_id": "u002", "k": 2, "text": "caf\xc3\xa9"}\n')
    items = list(iter_jobs(src))
    assert [(type(x), x.line) for x in items] == [(Job, 1), (FailedLine, 2), (Job, 4)]
    bad = items[1]
    assert isinstance(bad, FailedLine) and bad.error == "MalformedLineError"
    assert "UTF-8" in bad.reason
    assert items[2].request["text"] == "café"  # valid UTF-8 is read as before
    ticks: list[tuple[int, int | None]] = []
    report = LocalBatchEngine(rec).run(src, tmp_path / "out.jsonl",
                                       progress=lambda done, total: ticks.append((done, total)))
    assert report.done == 2 and [(f.line, f.error) for f in report.failed] == [(2, "MalformedLineError")]
    assert sorted(read_out(tmp_path / "out.jsonl")) == [1, 4]
    assert report.total == 3 and ticks[-1] == (3, 3)


def test_a_byte_order_mark_opening_the_file_is_not_part_of_line_1(tmp_path):
    """Files saved by Windows editors start with a UTF-8 BOM: line 1 failed as malformed JSON."""
    src = tmp_path / "req.jsonl"
    src.write_bytes(b'\xef\xbb\xbf{"user_id": "u001", "k": 2}\n{"user_id": "u002", "k": 2}\n')
    items = list(iter_jobs(src))
    assert [type(x) for x in items] == [Job, Job]
    assert items[0].request["user_id"] == "u001"
