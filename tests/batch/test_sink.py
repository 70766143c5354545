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
