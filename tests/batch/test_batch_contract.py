"""The batch contract at its edges: request ids as idempotency keys, two jobs on one output,
an input that changes while its job runs, a line too long to hold in memory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from batch_fakes import GOOD, read_out, write_requests

from llmrank.batch.base import FailedLine
from llmrank.batch.jobs import Job, iter_jobs
from llmrank.batch.local import LocalBatchEngine
from llmrank.errors import DataError


def test_a_request_id_reused_by_another_line_fails_that_line(rec_factory, tmp_path):
    """request_id is the feedback store's idempotency key: a second line under a logged id was
    served the first line's slate (u001 asked for k=3 and got line 1's two items), and lines
    of other users under one id shared it in the output. The first line keeps the id; every
    later line that reuses it fails alone, naming the line that holds it."""
    rec = rec_factory(feedback={"path": str(tmp_path / "fb.sqlite")})
    rows = [{"user_id": "u001", "k": 2, "request_id": "x"}, {"user_id": "u002", "k": 2},
            {"user_id": "u001", "k": 3, "request_id": "x"}, {"text": "rocket", "request_id": "x"},
            {"user_id": "u003", "k": 2, "request_id": "y"}]
    src = write_requests(tmp_path / "req.jsonl", rows)
    out = tmp_path / "out.jsonl"
    report = LocalBatchEngine(rec).run(src, out)
    failed = {f.line: f for f in report.failed}
    assert sorted(failed) == [3, 4] and report.done == 3
    assert all(f.error == "InvalidRequestError" and "'x' is already used by line 1" in f.reason
               for f in failed.values())
    got = read_out(out)
    assert [got[n]["request_id"] for n in sorted(got)] == ["x", got[2]["request_id"], "y"]
    assert len({r["request_id"] for r in got.values()}) == 3
    # a retried line is the same request: it keeps its id and gets the logged slate back
    again = LocalBatchEngine(rec).run(src, out, retry_failed=True)
    assert sorted(f.line for f in again.failed) == [3, 4] and read_out(out) == got
    LocalBatchEngine(rec).run(src, tmp_path / "redo.jsonl")
    assert read_out(tmp_path / "redo.jsonl") == got


def test_generated_request_ids_do_not_count_as_reuse(tmp_path):
    src = write_requests(tmp_path / "req.jsonl", [{"user_id": "u001"}, {"user_id": "u001"}, GOOD[2]])
    jobs = list(iter_jobs(src, id_prefix="p"))
    assert all(isinstance(j, Job) for j in jobs)
    assert [j.request["request_id"] for j in jobs if isinstance(j, Job)] == ["p-1", "p-2", "text-1"]
    assert json.loads(src.read_text().splitlines()[0]) == {"user_id": "u001"}


JOB = textwrap.dedent("""
    import sys, time
    from llmrank.batch.local import LocalBatchEngine
    from llmrank.llm.fake import FakeLLM
    from llmrank.recommender import Recommender

    class Slow(FakeLLM):  # the tests' FakeLLM scores, each call delayed
        def label_logprobs(self, prompts, labels):
            time.sleep(float(sys.argv[3]))
            return super().label_logprobs(prompts, labels)

    cfg = {"reranker": {"backend": "fake"}, "embedder": {"backend": "hashing", "cache": False}}
    rec = Recommender.from_config(cfg, llm=Slow())
    LocalBatchEngine(rec, batch_size=3).run(sys.argv[1], sys.argv[2], retry_failed=len(sys.argv) > 4)
""")


def start_job(src, out, delay: float = 0.2, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", JOB, str(src), str(out), str(delay), *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_for_lines(proc: subprocess.Popen, out, n: int) -> None:
    deadline = time.time() + 60
    while time.time() < deadline and (not out.exists() or out.read_bytes().count(b"\n") < n):
        assert proc.poll() is None, "the job ended too early"
        time.sleep(0.02)


def test_a_second_job_on_a_running_output_is_refused(rec, tmp_path):
    """Nothing stopped two jobs on one output: the second 'resumed' what the first had written
    (cutting its half-written last line as a torn record), both appended the remaining lines,
    and the output could hold lines twice. The output is locked while a job runs (released by the
    kernel when its process dies, so a killed job leaves no stale lock)."""
    rows = [{"user_id": f"u{u:03d}", "k": 2} for u in range(1, 13)]
    src = write_requests(tmp_path / "req.jsonl", rows)
    out = tmp_path / "out.jsonl"
    proc = start_job(src, out)
    try:
        wait_for_lines(proc, out, 2)
        for overwrite in (False, True):
            with pytest.raises(DataError, match="another job is writing"):
                LocalBatchEngine(rec).run(src, out, overwrite=overwrite)
        assert proc.poll() is None
    finally:
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    full = tmp_path / "full.jsonl"
    LocalBatchEngine(rec).run(src, full)
    assert read_out(out) == read_out(full)  # no line twice, none lost
    killed = tmp_path / "killed.jsonl"
    proc = start_job(src, killed)
    wait_for_lines(proc, killed, 1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    LocalBatchEngine(rec).run(src, killed)  # no stale lock
    assert read_out(killed) == read_out(full)


def _records(path) -> list[dict]:
    """A file's records in file order, without the timing-dependent trace."""
    recs = [json.loads(t) for t in path.read_text(encoding="utf-8").splitlines()]
    for r in recs:
        r.pop("trace", None)
    return recs


def test_a_job_killed_at_several_points_ends_as_an_uninterrupted_run(rec, tmp_path):
    """SIGKILL (no cleanup at all) after a few lines, mid-run and late, each time resuming
    the killed run: the final output, errors file and meta equal an uninterrupted run's, in
    input order, no line twice or missing."""
    rows: list = [{"user_id": f"u{u:03d}", "k": 2} for u in range(1, 19)]
    rows[3] = "{bad json"
    rows[8] = {"user_id": "nobody"}
    rows[12] = {"user_id": "u001", "request_id": "r1"}
    rows[14] = {"user_id": "u002", "request_id": "r1"}  # reuses line 13's id
    src = write_requests(tmp_path / "req.jsonl", rows)
    out = tmp_path / "out.jsonl"
    for at in (2, 7, 12):
        proc = start_job(src, out, 0.05)
        try:
            wait_for_lines(proc, out, at)
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        assert json.loads((tmp_path / "out.jsonl.meta.json").read_text())["complete"] is False
    report = LocalBatchEngine(rec, batch_size=3).run(src, out)
    assert report.resumed >= 12 and report.done == 15
    full = tmp_path / "full.jsonl"
    LocalBatchEngine(rec, batch_size=3).run(src, full)
    assert _records(out) == _records(full)
    assert [r["line"] for r in _records(out)] == [n for n in range(1, 19) if n not in (4, 9, 15)]
    assert (tmp_path / "out.jsonl.errors.jsonl").read_text() == (tmp_path / "full.jsonl.errors.jsonl").read_text()
    meta, ref = (json.loads((tmp_path / f"{n}.jsonl.meta.json").read_text()) for n in ("out", "full"))
    assert [meta[k] for k in ("complete", "total", "done", "failed")] == [True, 18, 15, 3]
    assert [ref[k] for k in ("complete", "total", "done", "failed")] == [True, 18, 15, 3]


def test_an_input_that_changes_while_its_job_runs_is_detected(rec, tmp_path):
    """The input was fingerprinted before it was read: lines rewritten or appended while the
    job ran were served and the output marked complete under the old fingerprint, so the
    output mixed two versions of the input and said it was finished. What was read is
    compared with the fingerprint at the end: the run fails (DataError), the output stays
    incomplete, and a resume against the changed file is refused."""
    # lines padded past the reader's buffer, so the edits land in lines not read yet
    rows = [json.dumps(r) + " " * 20_000 for r in GOOD[:4]]
    src = tmp_path / "req.jsonl"
    out = tmp_path / "out.jsonl"

    class EditsTheInput:
        def __init__(self, edit) -> None:
            self.edit, self.calls, self.config, self.dataset = edit, 0, rec.config, rec.dataset

        def recommend(self, req):
            self.calls += 1
            if self.calls == 2:
                self.edit()
            return rec.recommend(req)

    def append() -> None:
        with open(src, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(GOOD[5]) + "\n")

    def rewrite() -> None:  # same length, another history on line 4
        src.write_text(src.read_text().replace('"c001"', '"c005"'))

    for edit in (append, rewrite):
        write_requests(src, rows)
        with pytest.raises(DataError, match="changed while the job ran"):
            LocalBatchEngine(EditsTheInput(edit), batch_size=1).run(src, out, overwrite=True)
        assert json.loads((tmp_path / "out.jsonl.meta.json").read_text())["complete"] is False
        with pytest.raises(DataError, match="different input"):
            LocalBatchEngine(rec).run(src, out)


def test_a_line_too_long_fails_alone_without_being_read_whole(rec, tmp_path):
    """A line was read, decoded and parsed whole: one huge line (a JSON array saved on one
    line instead of JSON lines, a runaway writer) took memory several times its size and
    could end the job. A line over MAX_LINE_BYTES (POST /recommend's body limit) is one
    failed line, skipped in chunks; the lines around it run."""
    import tracemalloc

    from llmrank.batch.jobs import MAX_LINE_BYTES
    from llmrank.batch.runner import BatchRun

    huge = 6 * MAX_LINE_BYTES
    src = tmp_path / "req.jsonl"
    with open(src, "wb") as fh:
        fh.write(json.dumps(GOOD[0]).encode() + b"\n")
        fh.write(b'{"text": "' + b"a" * huge + b'"}\n')
        fh.write(b"[" + b"{}," * (huge // 3) + b"{}]\n")
        fh.write(json.dumps(GOOD[1]).encode())  # a last line without its newline
    tracemalloc.start()
    try:
        items = list(iter_jobs(src))
        total = BatchRun("local", src, tmp_path / "x.jsonl", config=rec.config).total
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 3 * MAX_LINE_BYTES, f"peak {peak >> 20} MiB"  # bounded, not the line's size
    assert total == 4 and [(type(x), x.line) for x in items] == [(Job, 1), (FailedLine, 2), (FailedLine, 3), (Job, 4)]
    assert all(x.error == "MalformedLineError" and "line too long" in x.reason
               for x in items if isinstance(x, FailedLine))
    report = LocalBatchEngine(rec).run(src, tmp_path / "out.jsonl")
    assert report.done == 2 and [f.line for f in report.failed] == [2, 3]
    assert sorted(read_out(tmp_path / "out.jsonl")) == [1, 4]


def test_the_line_limit_is_the_http_body_limit():
    pytest.importorskip("fastapi")
    from llmrank.batch.jobs import MAX_LINE_BYTES
    from llmrank.serve.app import MAX_BODY_BYTES

    assert MAX_LINE_BYTES == MAX_BODY_BYTES
