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
