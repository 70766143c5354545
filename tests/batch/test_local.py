"""The local batch engine: same results as direct Recommender calls, bad lines reported and
skipped, resume after an interruption (exception or kill -9) without redoing or losing work."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from batch_fakes import CFG, GOOD, read_out, write_requests

from llmrank.batch import BatchReport, run_batch
from llmrank.batch.local import LocalBatchEngine
from llmrank.errors import ConfigError, DataError
from llmrank.records import RecRequest
from llmrank.registry import batch_engines
from llmrank.serve.schemas import BatchLineModel


class Counting:
    """A Recommender proxy that counts calls and can stop the job at call ``stop_at``."""

    def __init__(self, rec, stop_at: int | None = None) -> None:
        self.rec, self.stop_at, self.calls = rec, stop_at, 0
        self.config, self.dataset = rec.config, rec.dataset

    def _tick(self) -> None:
        self.calls += 1
        if self.stop_at is not None and self.calls >= self.stop_at:
            raise KeyboardInterrupt

    def recommend(self, req):
        self._tick()
        return self.rec.recommend(req)

    def rerank(self, req, candidates):
        self._tick()
        return self.rec.rerank(req, candidates)


def direct(rec, line: dict, request_id: str) -> dict:
    """What the Recommender itself returns for one request line (the reference)."""
    from llmrank.serve.schemas import RecResponseModel

    model = BatchLineModel.model_validate({**line, "request_id": request_id})
    req = model.to_record()
    resp = rec.rerank(req, model.candidates) if model.candidates else rec.recommend(req)
    body = RecResponseModel.from_record(resp).model_dump(mode="json")
    body.pop("trace")
    return body


def test_results_identical_to_direct_calls(rec, tmp_path):
    src = write_requests(tmp_path / "req.jsonl", GOOD)
    report = LocalBatchEngine(rec, batch_size=3).run(src, tmp_path / "out.jsonl")
    assert (report.total, report.done, report.failed, report.processed) == (8, 8, [], 8)
    assert report.throughput > 0 and report.engine == "local"
    out = read_out(tmp_path / "out.jsonl")
    assert sorted(out) == list(range(1, 9))
    for n, line in enumerate(GOOD, 1):
        got = {k: v for k, v in out[n].items() if k != "line"}
        assert got == direct(rec, line, got["request_id"]), f"line {n}"
    assert out[3]["request_id"] == "text-1"
    assert out[1]["request_id"].endswith("-1") and out[1]["request_id"] != out[2]["request_id"]
    assert sorted(it["item_id"] for it in out[5]["items"]) == ["c010", "c011", "c012"]
    assert all(it["explanation"] for it in out[2]["items"])


def test_bad_lines_are_reported_and_skipped(rec, tmp_path):
    rows = [GOOD[0], "{not json", "", {"user_id": "nobody"}, {"k": 0}, "[1, 2]",
            {"user_id": "u001", "colour": "red"}, GOOD[1], "   ", '{"user_id": "u002", "k": 2']
    src = write_requests(tmp_path / "req.jsonl", rows)
    with open(src, "ab") as fh:
        fh.write(b'{"text": "caf\xe9 \xff noir", "k": 1}\n')  # not UTF-8: fails alone, not fatal
    report = run_batch(src, tmp_path / "out.jsonl", recommender=rec)
    failed = {f.line: f for f in report.failed}
    assert sorted(failed) == [2, 4, 5, 6, 7, 10, 11]
    assert failed[2].error == "MalformedLineError" and "malformed JSON" in failed[2].reason
    assert failed[4].error == "UnknownUserError" and "nobody" in failed[4].reason
    assert failed[5].error == "ValidationError" and "k:" in failed[5].reason
    assert failed[6].error == "ValidationError" and failed[7].error == "ValidationError"
    assert "colour" in failed[7].reason and failed[10].error == "MalformedLineError"
    assert failed[11].error == "MalformedLineError" and "UTF-8" in failed[11].reason
    assert sorted(read_out(tmp_path / "out.jsonl")) == [1, 8]
    assert report.done == 2 and report.total == 9  # 11 lines, 2 blank: blank lines are not requests
    errors = [json.loads(x) for x in (tmp_path / "out.jsonl.errors.jsonl").read_text().splitlines()]
    assert sorted(e["line"] for e in errors) == [2, 4, 5, 6, 7, 10, 11]


def test_resume_after_interruption_redoes_nothing(rec, tmp_path):
    src = write_requests(tmp_path / "req.jsonl", [*GOOD, "{bad"])
    out = tmp_path / "out.jsonl"
    with pytest.raises(KeyboardInterrupt):
        LocalBatchEngine(Counting(rec, stop_at=4), batch_size=2).run(src, out)
    first = read_out(out)
    assert sorted(first) == [1, 2, 3]  # everything finished before the interrupt is on disk
    again = Counting(rec)
    report = LocalBatchEngine(again, batch_size=2).run(src, out)
    assert again.calls == len(GOOD) - 3  # only the unfinished requests ran
    assert report.resumed == 3 and report.processed == len(GOOD) - 3 + 1
    assert report.done == len(GOOD) and [f.line for f in report.failed] == [9]
    full = tmp_path / "full.jsonl"
    LocalBatchEngine(rec).run(src, full)
    assert read_out(out) == read_out(full)  # the same results as an uninterrupted run
    third = Counting(rec)
    report = LocalBatchEngine(third).run(src, out)  # nothing left: nothing redone, failures kept
    assert third.calls == 0 and report.resumed == 9 and [f.line for f in report.failed] == [9]


def test_a_partial_last_line_is_cut_and_redone(rec, tmp_path):
    src = write_requests(tmp_path / "req.jsonl", GOOD[:4])
    out = tmp_path / "out.jsonl"
    LocalBatchEngine(rec).run(src, out)
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:2]) + lines[2][: len(lines[2]) // 2])  # killed mid-write
    counter = Counting(rec)
    report = LocalBatchEngine(counter).run(src, out)
    assert counter.calls == 2 and report.done == 4
    assert sorted(read_out(out)) == [1, 2, 3, 4]


def test_existing_outputs_are_protected(rec, tmp_path):
    src = write_requests(tmp_path / "req.jsonl", GOOD[:2])
    other = write_requests(tmp_path / "other.jsonl", GOOD[2:4])
    out = tmp_path / "out.jsonl"
    LocalBatchEngine(rec).run(src, out)
    with pytest.raises(DataError, match="different input"):
        LocalBatchEngine(rec).run(other, out)
    changed = rec.__class__.from_config({**CFG, "reranker": {"backend": "fake", "permutations": 3}},
                                        dataset=rec.dataset, retriever=rec.retriever, llm=rec.reranker.llm)
    with pytest.raises(ConfigError, match="different config; start again with --overwrite"):
        LocalBatchEngine(changed).run(src, out)  # a config problem: exit 2, as README says
    report = LocalBatchEngine(rec).run(other, out, overwrite=True)
    assert report.done == 2 and report.resumed == 0 and sorted(read_out(out)) == [1, 2]
    stray = tmp_path / "stray.jsonl"
    stray.write_text('{"mine": 1}\n')
    with pytest.raises(DataError, match="not a llmrank batch output"):
        LocalBatchEngine(rec).run(src, stray)
    assert stray.read_text() == '{"mine": 1}\n'


def test_iterable_of_records_progress_and_registry(rec, tmp_path):
    reqs = [RecRequest(user_id="u001", k=2, request_id="a"), RecRequest(text="haunted radio", k=2,
                                                                          request_id="b")]
    ticks: list[tuple[int, int | None]] = []
    engine = batch_engines.create("local", recommender=rec, batch_size=1)
    report = engine.run(reqs, tmp_path / "out.jsonl", progress=lambda done, total: ticks.append((done, total)))
    assert isinstance(report, BatchReport) and report.done == 2 and ticks == [(1, 2), (2, 2)]
    out = read_out(tmp_path / "out.jsonl")
    assert [out[1]["request_id"], out[2]["request_id"]] == ["a", "b"]
    assert out[1]["items"] == direct(rec, {"user_id": "u001", "k": 2}, "a")["items"]
    assert report.to_dict()["n_failed"] == 0
    # a resume with nothing left to do still shows the bar at its total (it never ticked)
    ticks.clear()
    engine.run(reqs, tmp_path / "out.jsonl", progress=lambda done, total: ticks.append((done, total)))
    assert ticks == [(2, 2)]


def test_an_iterable_input_resumes_only_its_own_output(rec, tmp_path):
    """An iterable is fingerprinted like a file: other requests into the same output are
    refused, while the same requests made again (new random request ids) resume; a one-pass
    generator works too."""
    out = tmp_path / "out.jsonl"

    def users(*ids):
        return [RecRequest(user_id=u, k=2) for u in ids]

    with pytest.raises(KeyboardInterrupt):
        LocalBatchEngine(Counting(rec, stop_at=3)).run(users("u001", "u002", "u003"), out)
    with pytest.raises(DataError, match="different input"):
        LocalBatchEngine(rec).run(users("u010", "u011", "u012", "u013"), out)
    again = Counting(rec)
    report = LocalBatchEngine(again).run(users("u001", "u002", "u003"), out)
    assert again.calls == 1 and report.resumed == 2 and report.done == 3
    assert [r["user_id"] for _, r in sorted(read_out(out).items())] == ["u001", "u002", "u003"]
    gen_out = tmp_path / "gen.jsonl"
    report = LocalBatchEngine(rec).run(({"user_id": u, "k": 2} for u in ("u001", "u002")), gen_out)
    assert report.done == 2 and report.total == 2
    first = read_out(gen_out)
    report = LocalBatchEngine(rec).run(({"user_id": u, "k": 2} for u in ("u001", "u002")), gen_out)
    assert report.resumed == 2 and read_out(gen_out) == first  # the same deterministic request ids


def test_workers_need_a_config(rec):
    with pytest.raises(ConfigError, match="workers > 1"):
        LocalBatchEngine(rec, workers=2)


def test_recommender_built_from_config_only_when_work_is_left(tmp_path, monkeypatch):
    from llmrank.recommender import Recommender

    src = write_requests(tmp_path / "req.jsonl", ["{bad"])
    monkeypatch.setattr(Recommender, "from_config", classmethod(lambda *a, **k: pytest.fail("built")))
    report = LocalBatchEngine(config=CFG).run(src, tmp_path / "out.jsonl")
    assert report.done == 0 and [f.line for f in report.failed] == [1]


SLOW_JOB = textwrap.dedent("""
    import sys, time
    from llmrank.batch.local import LocalBatchEngine
    from llmrank.llm.fake import FakeLLM
    from llmrank.recommender import Recommender

    def slow(prompt, labels):
        time.sleep(0.3)
        return [0.0] * len(labels)

    cfg = {"reranker": {"backend": "fake"}, "embedder": {"backend": "hashing", "cache": False}}
    rec = Recommender.from_config(cfg, llm=FakeLLM(scores=slow))
    LocalBatchEngine(rec, batch_size=4).run(sys.argv[1], sys.argv[2])
""")


def test_killed_process_resumes_without_losing_acknowledged_lines(rec, tmp_path):
    rows = [{"user_id": f"u{u:03d}", "k": 2} for u in range(1, 31)]
    src = write_requests(tmp_path / "req.jsonl", rows)
    out = tmp_path / "out.jsonl"
    proc = subprocess.Popen([sys.executable, "-c", SLOW_JOB, str(src), str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and (not out.exists() or out.read_text().count("\n") < 3):
            assert proc.poll() is None, "the job ended before it could be killed"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    before = read_out(out)
    assert 3 <= len(before) < len(rows)
    counter = Counting(rec)
    report = LocalBatchEngine(counter).run(src, out)
    assert counter.calls == len(rows) - len(before)
    after = read_out(out)
    assert sorted(after) == list(range(1, 31)) and report.done == 30
    assert all(after[n] == before[n] for n in before)  # acknowledged lines untouched


@pytest.mark.slow
def test_worker_pool_matches_serial(rec, tmp_path):
    src = write_requests(tmp_path / "req.jsonl", [*GOOD, "{bad"])
    serial = run_batch(src, tmp_path / "serial.jsonl", config=CFG)
    pooled = run_batch(src, tmp_path / "pool.jsonl", config=CFG, workers=2, batch_size=2)
    assert (pooled.done, [f.line for f in pooled.failed]) == (serial.done, [9])
    assert read_out(tmp_path / "pool.jsonl") == read_out(tmp_path / "serial.jsonl")


def test_unknown_candidates_are_noted_as_post_rerank_notes_them(rec, tmp_path):
    """A batch line dropped candidate ids not in the catalog without a word."""
    line = {"user_id": "u003", "candidates": ["c010", "ghost", "c011", "ghost", "nope"], "k": 3}
    src = write_requests(tmp_path / "req.jsonl", [line, {"user_id": "u001", "candidates": ["c010"]}])
    LocalBatchEngine(rec).run(src, tmp_path / "out.jsonl")
    out = {r["line"]: r for r in map(json.loads, (tmp_path / "out.jsonl").read_text().splitlines())}
    assert "dropped 2 candidates not in the catalog: ghost, nope" in out[1]["trace"]["notes"]
    assert {it["item_id"] for it in out[1]["items"]} == {"c010", "c011"}
    assert not [n for n in out[2]["trace"]["notes"] if "dropped" in n]


def test_worker_pool_writes_in_input_order(tmp_path, monkeypatch):
    """The pool wrote each batch as it finished: a slow first batch came out after the later
    ones, so the output order depended on timing (and differed from a serial run)."""
    from concurrent.futures import ThreadPoolExecutor

    from llmrank.batch import local

    class SlowFirstPool:  # the process pool's interface, in threads; the first batch is slow
        def __init__(self, workers, mp_context=None, initializer=None, initargs=()):
            initializer(*initargs)
            self.threads = ThreadPoolExecutor(workers)

        def submit(self, fn, chunk):
            def work():
                if chunk[0].line == 1:
                    time.sleep(0.5)
                return fn(chunk)
            return self.threads.submit(work)

        def shutdown(self, wait=True, cancel_futures=False):
            self.threads.shutdown(wait=wait, cancel_futures=cancel_futures)

    monkeypatch.setattr(local, "ProcessPoolExecutor", SlowFirstPool)
    monkeypatch.setattr(local, "_WORKER_REC", None)
    src = write_requests(tmp_path / "req.jsonl", [*GOOD, "{bad"])
    report = run_batch(src, tmp_path / "out.jsonl", config=CFG, workers=2, batch_size=2)
    assert report.done == len(GOOD) and [f.line for f in report.failed] == [9]
    lines = [json.loads(t)["line"] for t in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert lines == list(range(1, len(GOOD) + 1))


class Flaky(Counting):
    """A backend that times out for some users (a server that is down), until it is healed."""

    def __init__(self, rec, down: set[str]) -> None:
        super().__init__(rec)
        self.down = down

    def recommend(self, req):
        if req.user_id in self.down:
            self.calls += 1
            raise TimeoutError("backend timed out")
        return super().recommend(req)


def test_retry_failed_reruns_the_failed_lines_on_resume(rec, tmp_path):
    """A transient failure stayed failed forever: the only way out was overwrite=True, which
    redid every finished line too."""
    rows = [GOOD[0], GOOD[1], {"user_id": "nobody"}, GOOD[5], GOOD[6]]  # u001 u002 nobody u004 u005
    src = write_requests(tmp_path / "req.jsonl", rows)
    out = tmp_path / "out.jsonl"
    errors, meta = tmp_path / "out.jsonl.errors.jsonl", tmp_path / "out.jsonl.meta.json"
    first = LocalBatchEngine(Flaky(rec, {"u002", "u004"})).run(src, out)
    assert [(f.line, f.error) for f in first.failed] == [(2, "TimeoutError"), (3, "UnknownUserError"),
                                                         (4, "TimeoutError")]
    healed = Counting(rec)
    report = LocalBatchEngine(healed).run(src, out)  # the default: failed lines stay failed
    assert healed.calls == 0 and [f.line for f in report.failed] == [2, 3, 4]
    report = LocalBatchEngine(healed).run(src, out, retry_failed=True)
    assert healed.calls == 3 and report.resumed == 2 and report.processed == 3
    assert report.done == 4 and [(f.line, f.error) for f in report.failed] == [(3, "UnknownUserError")]
    full = tmp_path / "full.jsonl"
    LocalBatchEngine(rec).run(src, full)
    assert read_out(out) == read_out(full)  # the retried lines moved to the output
    assert [json.loads(t)["line"] for t in errors.read_text().splitlines()] == [3]  # once, not twice
    m = json.loads(meta.read_text())
    assert (m["complete"], m["total"], m["done"], m["failed"]) == (True, 5, 4, 1)
    report = run_batch(src, out, recommender=rec, retry_failed=True)  # fails again: still once
    assert report.processed == 1 and [f.line for f in report.failed] == [3]
    assert [json.loads(t)["line"] for t in errors.read_text().splitlines()] == [3]
    assert json.loads(meta.read_text())["failed"] == 1


def test_an_interrupted_or_killed_retry_leaves_no_line_twice(rec, tmp_path):
    """A retried line's old error record stays in the errors file until the run closes (then
    the file is rewritten); after a kill, the next resume keeps the last record of each line
    and drops those that succeeded since."""
    src = write_requests(tmp_path / "req.jsonl", [GOOD[0], GOOD[1], GOOD[5]])
    out = tmp_path / "out.jsonl"
    errors = tmp_path / "out.jsonl.errors.jsonl"
    LocalBatchEngine(Flaky(rec, {"u002", "u004"})).run(src, out)
    stale = errors.read_text()  # the records of lines 2 and 3, as a kill would leave them
    with pytest.raises(KeyboardInterrupt):  # line 2 now succeeds, line 3 is interrupted
        LocalBatchEngine(Counting(rec, stop_at=2), batch_size=1).run(src, out, retry_failed=True)
    assert [json.loads(t)["line"] for t in errors.read_text().splitlines()] == [3]
    with open(errors, "a", encoding="utf-8") as fh:
        fh.write(stale)  # a kill before the rewrite: line 2 superseded, line 3 twice
    report = LocalBatchEngine(rec).run(src, out)
    assert report.done == 2 and [f.line for f in report.failed] == [3] and report.processed == 0
    assert [json.loads(t)["line"] for t in errors.read_text().splitlines()] == [3]
    assert sorted(read_out(out)) == [1, 2]


def test_a_recommender_and_a_config_at_once_are_refused(rec, tmp_path):
    """The resume check fingerprinted config= while the run used recommender=: a Recommender
    of another config resumed (and mixed its results into) an output written with config=."""
    changed = rec.__class__.from_config({**CFG, "reranker": {"backend": "fake", "permutations": 3}},
                                        dataset=rec.dataset, retriever=rec.retriever, llm=rec.reranker.llm)
    src = write_requests(tmp_path / "req.jsonl", GOOD[:2])
    with pytest.raises(ConfigError, match=r"pass recommender= or config=.*not both"):
        run_batch(src, tmp_path / "out.jsonl", recommender=changed, config=CFG)
    with pytest.raises(ConfigError, match="not both"):
        LocalBatchEngine(rec, overrides={"reranker": {"permutations": 2}})
    assert not (tmp_path / "out.jsonl").exists()
