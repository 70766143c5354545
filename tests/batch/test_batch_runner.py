"""BatchRun: the bookkeeping every engine shares (inputs, outputs, report)."""

from __future__ import annotations

import pytest
from batch_fakes import GOOD, write_requests

from llmrank.batch.local import LocalBatchEngine
from llmrank.errors import DataError


@pytest.mark.parametrize(("src_name", "out_name"), [("req.jsonl", "req.jsonl"),
                                                    ("x.jsonl.errors.jsonl", "x.jsonl"),
                                                    ("x.jsonl.meta.json", "x.jsonl")])
def test_an_output_that_is_the_input_is_refused_even_with_overwrite(rec, tmp_path, src_name, out_name):
    """overwrite=True (--overwrite) unlinks the output files first: naming the input as the
    output (or as its errors or meta file) deleted the user's requests."""
    src = write_requests(tmp_path / src_name, GOOD[:2])
    before = src.read_bytes()
    for overwrite in (False, True):
        with pytest.raises(DataError, match="is the input"):
            LocalBatchEngine(rec).run(src, tmp_path / out_name, overwrite=overwrite)
        assert src.read_bytes() == before


def test_meta_says_whether_the_output_is_complete(rec, tmp_path):
    """An output cut short by a crash looked exactly like a finished one: nothing on disk
    told a reader of out.jsonl that requests were missing."""
    import json

    class StopAtThird:
        def __init__(self) -> None:
            self.calls, self.config, self.dataset = 0, rec.config, rec.dataset

        def recommend(self, req):
            self.calls += 1
            if self.calls == 3:
                raise KeyboardInterrupt
            return rec.recommend(req)

    src = write_requests(tmp_path / "req.jsonl", [*GOOD[:4], "{bad"])
    out = tmp_path / "out.jsonl"
    meta_path = tmp_path / "out.jsonl.meta.json"
    with pytest.raises(KeyboardInterrupt):
        LocalBatchEngine(StopAtThird(), batch_size=1).run(src, out)
    assert json.loads(meta_path.read_text())["complete"] is False
    LocalBatchEngine(rec).run(src, out)
    meta = json.loads(meta_path.read_text())
    assert (meta["complete"], meta["done"], meta["failed"], meta["total"]) == (True, 4, 1, 5)


class _Flaky:
    """A recommender whose model server is down for the first ``down`` calls."""

    def __init__(self, rec, down: int) -> None:
        self.rec, self.down, self.calls = rec, down, 0
        self.config, self.dataset = rec.config, rec.dataset

    def recommend(self, req):
        from llmrank.errors import ModelUnavailableError

        self.calls += 1
        if self.calls <= self.down:
            raise ModelUnavailableError("http://model:8000/v1/completions failed after 3 attempts")
        return self.rec.recommend(req)


def test_a_line_retries_a_model_server_that_is_briefly_down(rec, tmp_path, monkeypatch):
    """A request that met ModelUnavailableError (or a timeout, a refused connection) was
    recorded as failed at once: a short outage failed every line it touched."""
    import llmrank.batch.jobs as jobs

    monkeypatch.setattr(jobs, "TRANSIENT_BACKOFF", 0.0)
    flaky = _Flaky(rec, down=2)
    report = LocalBatchEngine(flaky, batch_size=1).run(write_requests(tmp_path / "r.jsonl", GOOD[:3]),
                                                        tmp_path / "out.jsonl")
    assert (report.done, len(report.failed), flaky.calls) == (3, 0, 5)


def test_an_outage_stops_the_job_and_a_resume_finishes_it(rec, tmp_path, monkeypatch):
    """A server that stays down failed and recorded every remaining line (each after its
    retries); now MAX_CONSECUTIVE_UNAVAILABLE failures in a row stop the job, resumable, and
    --retry-failed serves the recorded ones once the server is back."""
    import json

    import llmrank.batch.jobs as jobs
    import llmrank.batch.runner as runner
    from llmrank.errors import ModelUnavailableError

    monkeypatch.setattr(jobs, "TRANSIENT_BACKOFF", 0.0)
    monkeypatch.setattr(runner, "MAX_CONSECUTIVE_UNAVAILABLE", 3)
    src = write_requests(tmp_path / "r.jsonl", GOOD[:8])
    out = tmp_path / "out.jsonl"
    down = _Flaky(rec, down=10**9)
    with pytest.raises(ModelUnavailableError, match="3 requests in a row"):
        LocalBatchEngine(down, batch_size=1).run(src, out)
    assert down.calls == 3 * (jobs.TRANSIENT_RETRIES + 1)  # three lines tried, the rest untouched
    assert json.loads((tmp_path / "out.jsonl.meta.json").read_text())["complete"] is False
    report = LocalBatchEngine(rec).run(src, out, retry_failed=True)
    assert (report.done, len(report.failed)) == (8, 0)


def test_the_report_lists_a_bounded_number_of_failed_lines():
    """`llmrank rerank --json` printed every failed line: a million-line input of the wrong
    format gave a report of a million entries. The errors file keeps them all."""
    from llmrank.batch.base import MAX_FAILED_LISTED, BatchReport, FailedLine

    report = BatchReport("local", "out.jsonl", "out.jsonl.errors.jsonl",
                         failed=[FailedLine(n, "malformed JSON", "MalformedLineError") for n in range(1, 251)])
    d = report.to_dict()
    assert d["n_failed"] == 250 and len(d["failed"]) == MAX_FAILED_LISTED == 100
    assert [f["line"] for f in d["failed"]][:3] == [1, 2, 3]
