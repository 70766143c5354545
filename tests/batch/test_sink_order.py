"""ResultSink: a finished job's output and errors file are in input order, however many
resumes appended retried or redone lines after the lines already there."""

from __future__ import annotations

import json

import pytest
from batch_fakes import GOOD, read_out, write_requests

from llmrank.batch import sink as sink_module
from llmrank.batch.base import FailedLine
from llmrank.batch.local import LocalBatchEngine
from llmrank.batch.sink import ResultSink


class _Flaky:
    """A Recommender proxy whose backend times out for some users (until it is healed)."""

    def __init__(self, rec, down: set[str]) -> None:
        self.rec, self.down = rec, down
        self.config, self.dataset = rec.config, rec.dataset

    def recommend(self, req):
        if req.user_id in self.down:
            raise TimeoutError("backend timed out")
        return self.rec.recommend(req)

    def rerank(self, req, candidates):
        return self.rec.rerank(req, candidates)


def _lines(path) -> list[int]:
    return [json.loads(t)["line"] for t in path.read_text(encoding="utf-8").splitlines()]


def _meta(out) -> dict:
    return json.loads(out.with_name(out.name + ".meta.json").read_text())


def test_a_retried_job_ends_with_its_output_in_input_order(rec, tmp_path):
    """retry_failed appended the lines that now succeed after the finished ones (1, 3, 4, 5,
    2, 6): the output of a finished job was not in input order."""
    src = write_requests(tmp_path / "req.jsonl", GOOD[:6])  # u001 u002 text history u003 u004
    out = tmp_path / "out.jsonl"
    first = LocalBatchEngine(_Flaky(rec, {"u002", "u004"})).run(src, out)
    assert [f.line for f in first.failed] == [2, 6] and _lines(out) == [1, 3, 4, 5]
    kept = out.read_bytes().splitlines(keepends=True)
    report = LocalBatchEngine(rec).run(src, out, retry_failed=True)
    assert report.done == 6 and not report.failed
    assert _lines(out) == [1, 2, 3, 4, 5, 6]
    assert set(kept) <= set(out.read_bytes().splitlines(keepends=True))  # byte for byte
    full = tmp_path / "full.jsonl"
    LocalBatchEngine(rec).run(src, full)
    assert read_out(out) == read_out(full)  # the same records, none lost or doubled
    assert (tmp_path / "out.jsonl.errors.jsonl").read_text() == ""
    assert _meta(out)["complete"] is True and _meta(out)["done"] == 6


def test_an_output_already_in_order_is_not_rewritten(rec, tmp_path, monkeypatch):
    """The common case costs nothing: a retried last line lands in order, and a resume with
    nothing left to do finds the output in order; neither rewrites (nor re-reads) it."""
    src = write_requests(tmp_path / "req.jsonl", GOOD[:6])
    out = tmp_path / "out.jsonl"
    LocalBatchEngine(_Flaky(rec, {"u004"})).run(src, out)  # line 6 fails
    before = out.stat()
    written: list[str] = []
    real = sink_module.atomic_write

    def spy(path, *args, **kwargs):
        written.append(path.name)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(sink_module, "atomic_write", spy)
    sorted_files: list[str] = []
    monkeypatch.setattr(sink_module, "_ascending_runs",
                        lambda path: sorted_files.append(path.name) or [(0, path.stat().st_size)],
                        raising=False)
    report = LocalBatchEngine(rec).run(src, out, retry_failed=True)  # appends line 6 after 5
    assert report.done == 6 and _lines(out) == [1, 2, 3, 4, 5, 6]
    retried = out.stat()
    assert retried.st_ino == before.st_ino  # appended to, not replaced
    LocalBatchEngine(rec).run(src, out)  # nothing to do
    after = out.stat()
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (
        retried.st_ino, retried.st_mtime_ns, retried.st_size)
    assert "out.jsonl" not in written and sorted_files == []
    assert _meta(out)["complete"] is True


def test_the_merge_puts_several_runs_in_order_byte_for_byte(tmp_path):
    """Three resumes appending out of order leave three ascending runs in the output (and a
    line that failed after a higher one in the errors file); all are merged at the end."""
    out = tmp_path / "out.jsonl"
    runs = [[3, 6, 9], [1, 5, 8], [2, 4, 7, 10]]
    failures = [12, 11]  # not retried, no line twice: the errors file is not rewritten on close
    for n, lines in enumerate(runs):
        sink = ResultSink(out, input_key="k", config_key="c", engine="local")
        sink.open()
        for line in lines:  # varied lengths and non-ASCII text: records are kept as they are
            sink.write({"line": line, "ok": True, "items": [{"title": "é" * line * 700, "run": n}]})
        if n < len(failures):
            sink.fail(FailedLine(failures[n], "timed out", "TimeoutError"))
        sink.close()
    raw = out.read_bytes().splitlines(keepends=True)
    assert _lines(out) == [3, 6, 9, 1, 5, 8, 2, 4, 7, 10]
    sink = ResultSink(out, input_key="k", config_key="c", engine="local")
    sink.open()
    sink.close()
    sink.mark_complete(12)
    assert _lines(out) == list(range(1, 11))
    assert sorted(out.read_bytes().splitlines(keepends=True)) == sorted(raw)
    assert _lines(tmp_path / "out.jsonl.errors.jsonl") == [11, 12]
    assert not list(tmp_path.glob(".*.tmp"))


def test_reading_a_run_streams_lines_of_any_length(tmp_path):
    """Each run is read a chunk at a time: lines longer than a chunk, and a chunk ending
    mid-line, come back whole."""
    path = tmp_path / "f"
    lines = [b'{"line": %d, "x": "%s"}\n' % (i, b"y" * (i * 37 % 101)) for i in range(1, 40)]
    path.write_bytes(b"".join(lines))
    start = len(lines[0])
    end = start + sum(map(len, lines[1:30]))
    with open(path, "rb", buffering=0) as fh:
        for chunk in (1, 7, 64, 1 << 12):
            assert list(sink_module._read_range(fh, start, end, chunk)) == lines[1:30]


def test_a_kill_during_the_merge_leaves_the_old_output_and_the_job_incomplete(tmp_path, monkeypatch):
    """The merge writes a temp file renamed over the output only when complete; the next run
    (nothing left to do) puts it in order then."""
    import heapq

    out = tmp_path / "out.jsonl"
    for lines in ([2, 4], [1, 3]):
        sink = ResultSink(out, input_key="k", config_key="c", engine="local")
        sink.open()
        for line in lines:
            sink.write({"line": line, "ok": True, "items": []})
        sink.close()
    before = out.read_bytes()
    real = heapq.merge

    def killed(*iterables, **kwargs):
        merged = real(*iterables, **kwargs)
        yield next(merged)
        raise KeyboardInterrupt

    monkeypatch.setattr(heapq, "merge", killed)
    sink = ResultSink(out, input_key="k", config_key="c", engine="local")
    sink.open()
    sink.close()
    with pytest.raises(KeyboardInterrupt):
        sink.mark_complete(4)
    assert out.read_bytes() == before and not list(tmp_path.glob(".*.tmp"))
    assert _meta(out)["complete"] is False
    monkeypatch.setattr(heapq, "merge", real)
    sink = ResultSink(out, input_key="k", config_key="c", engine="local")
    sink.open()
    sink.close()
    sink.mark_complete(4)
    assert _lines(out) == [1, 2, 3, 4] and _meta(out)["complete"] is True


def test_the_merge_does_not_hold_the_output_in_memory(tmp_path):
    """The output may be larger than memory: the merge streams its runs."""
    import tracemalloc

    out = tmp_path / "out.jsonl"
    for lines in (range(1, 3001, 3), range(2, 3001, 3), range(3, 3001, 3)):
        sink = ResultSink(out, input_key="k", config_key="c", engine="local")
        sink.open()
        for line in lines:
            sink.write({"line": line, "ok": True, "items": [{"item_id": "x" * 40, "title": "t" * 400}] * 10})
        sink.close()
    sink = ResultSink(out, input_key="k", config_key="c", engine="local")
    sink.open()
    sink.close()
    tracemalloc.start()
    try:
        sink.mark_complete(3000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert _lines(out) == list(range(1, 3001))
    assert out.stat().st_size > 12_000_000 and peak < 3_000_000, peak
