"""ResultSink: the output files are the checkpoint of a batch job."""

from __future__ import annotations

import json

from batch_fakes import GOOD, read_out, write_requests

from llmrank.batch.local import LocalBatchEngine


def test_a_meta_file_left_without_its_output_is_replaced(rec, tmp_path):
    """Deleting out.jsonl and its errors file to start again kept the old meta.json (the
    fingerprint of another input): the new job's own output was then refused as belonging
    to "a different input" when it was resumed."""
    first = write_requests(tmp_path / "first.jsonl", GOOD[:2])
    second = write_requests(tmp_path / "second.jsonl", GOOD[2:5])
    out = tmp_path / "out.jsonl"
    LocalBatchEngine(rec).run(first, out)
    out.unlink()
    (tmp_path / "out.jsonl.errors.jsonl").unlink()
    assert (tmp_path / "out.jsonl.meta.json").exists()
    LocalBatchEngine(rec).run(second, out)
    report = LocalBatchEngine(rec).run(second, out)  # resumes its own output
    assert report.resumed == 3 and report.done == 3 and sorted(read_out(out)) == [1, 2, 3]


def test_resume_reads_finished_line_numbers_without_holding_the_output(tmp_path):
    """open() parsed every output record into one list to collect line numbers: resuming a
    large job held the whole output in memory."""
    import json
    import tracemalloc

    from llmrank.batch.sink import ResultSink

    out = tmp_path / "out.jsonl"
    sink = ResultSink(out, input_key="k", config_key="c", engine="local")
    sink.open()
    for line in range(1, 2001):
        sink.write({"line": line, "ok": True, "items": [{"item_id": "x" * 40, "title": "t" * 400}] * 10})
    sink.close()
    resumed = ResultSink(out, input_key="k", config_key="c", engine="local")
    tracemalloc.start()
    try:
        resumed.open()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        resumed.close()
    assert resumed.done == set(range(1, 2001))
    assert out.stat().st_size > 8_000_000 and peak < 1_000_000, peak
    assert json.loads(out.read_text().splitlines()[0])["line"] == 1


class _Counting:
    """Counts the requests a resumed run really makes."""

    def __init__(self, rec) -> None:
        self.rec, self.calls = rec, 0
        self.config, self.dataset = rec.config, rec.dataset

    def recommend(self, req):
        self.calls += 1
        return self.rec.recommend(req)

    def rerank(self, req, candidates):
        self.calls += 1
        return self.rec.rerank(req, candidates)


def test_corrupt_lines_in_the_middle_are_dropped_and_redone(rec, tmp_path, caplog):
    """A corrupt line in the middle of an output stayed in the file next to its redone
    request; a line that is not UTF-8, or an object without a numeric "line", ended the resume
    with an exception."""
    src = write_requests(tmp_path / "req.jsonl", GOOD[:6])
    out = tmp_path / "out.jsonl"
    LocalBatchEngine(rec).run(src, out)
    lines = out.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1][:20] + b"\n"  # torn: '{"line": 2, "reques'
    lines[2] = b'\xff\xfe{"line": 3}\n'  # not UTF-8
    lines[3] = b'{"line": "4", "ok": true}\n'  # no numeric line
    lines[4] = b'"line"\n'  # JSON, but not an object
    out.write_bytes(b"".join(lines))
    counter = _Counting(rec)
    with caplog.at_level("WARNING", logger="llmrank.batch.sink"):
        report = LocalBatchEngine(counter).run(src, out)
    assert counter.calls == 4 and report.done == 6 and report.resumed == 2
    assert sorted(read_out(out)) == [1, 2, 3, 4, 5, 6]  # every line parses, none twice
    warning = next(r.getMessage() for r in caplog.records if "corrupt" in r.getMessage())
    assert "4 corrupt lines" in warning and "2, 3, 4, 5" in warning and "redone" in warning
    assert len(out.read_bytes().splitlines()) == 6
    assert json.loads((tmp_path / "out.jsonl.meta.json").read_text())["done"] == 6


def test_a_corrupt_errors_file_line_is_dropped_and_its_request_redone(rec, tmp_path):
    src = write_requests(tmp_path / "req.jsonl", [GOOD[0], {"user_id": "nobody"}, "{bad"])
    out = tmp_path / "out.jsonl"
    LocalBatchEngine(rec).run(src, out)
    errors = tmp_path / "out.jsonl.errors.jsonl"
    errors.write_bytes(errors.read_bytes().replace(b'"line": 2', b'"line": null') + b'[1]\n\xff\n')
    report = LocalBatchEngine(rec).run(src, out)
    assert [f.line for f in report.failed] == [2, 3] and report.processed == 1
    records = [json.loads(t) for t in errors.read_text().splitlines()]
    assert sorted(r["line"] for r in records) == [2, 3]
