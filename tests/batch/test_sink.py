"""ResultSink: the output files are the checkpoint of a batch job."""

from __future__ import annotations

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
