"""The ray batch engine in local mode: the same outputs as the local engine, bad lines
reported, and a run interrupted under the local engine resumed by Ray."""

from __future__ import annotations

import pytest
from batch_fakes import CFG, GOOD, read_out, write_requests

from llmrank.batch import run_batch
from llmrank.batch.ray_engine import RayBatchEngine, RecommenderWorker

pytestmark = pytest.mark.slow
ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    yield
    ray.shutdown()


def test_worker_udf_without_ray(tmp_path):
    """The actor class itself, called as Ray Data would call it (columns of a batch)."""
    import json

    worker = RecommenderWorker(config=CFG)
    out = worker({"line": [1, 2], "request": [json.dumps({"user_id": "u001", "k": 2, "request_id": "a"}),
                                                  json.dumps({"user_id": "nobody", "request_id": "b"})]})
    first, second = (json.loads(x) for x in out["result"])
    assert out["line"] == [1, 2] and first["ok"] and len(first["items"]) == 2
    assert second == {"line": 2, "ok": False, "error": "UnknownUserError",
                      "reason": "unknown user 'nobody' in dataset 'catalog' and no history or text given"}


def test_ray_matches_local_and_resumes(local_ray, tmp_path):
    src = write_requests(tmp_path / "req.jsonl", [*GOOD, "{bad json", {"user_id": "nobody"}])
    local = run_batch(src, tmp_path / "local.jsonl", config=CFG)
    report = run_batch(src, tmp_path / "ray.jsonl", engine="ray", config=CFG, batch_size=3, concurrency=1)
    assert report.engine == "ray" and report.done == len(GOOD) == local.done
    assert [(f.line, f.error) for f in report.failed] == [(9, "MalformedLineError"), (10, "UnknownUserError")]
    assert read_out(tmp_path / "ray.jsonl") == read_out(tmp_path / "local.jsonl")
    again = RayBatchEngine(config=CFG).run(src, tmp_path / "ray.jsonl")  # all finished: nothing to do
    assert again.processed == 0 and again.resumed == len(GOOD) + 2


def test_ray_resumes_a_partial_run(local_ray, tmp_path):
    src = write_requests(tmp_path / "req.jsonl", GOOD)
    out = tmp_path / "out.jsonl"
    run_batch(write_requests(tmp_path / "req.jsonl", GOOD), out, config=CFG)
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:3]))  # as if the job had stopped after three requests
    report = run_batch(src, out, engine="ray", config=CFG, batch_size=2)
    assert report.resumed == 3 and report.processed == len(GOOD) - 3
    assert sorted(read_out(out)) == list(range(1, len(GOOD) + 1))


def test_gpu_per_worker_with_vllm_backend():
    eng = RayBatchEngine(config={**CFG, "reranker": {"backend": "vllm"}})
    assert eng.num_gpus_per_worker == 1.0
    assert RayBatchEngine(config=CFG).num_gpus_per_worker == 0.0


def test_ray_writes_in_input_order_like_local(local_ray, tmp_path):
    """Ray Data hands batches back as actors finish them: with two actors and a slow first
    batch the output came out of input order, unlike the local engine's file."""
    import json
    import time

    def factory():
        from llmrank.llm.fake import FakeLLM
        from llmrank.recommender import Recommender

        class SlowFirst:  # the first batch's requests are slow, the rest are not
            def __init__(self) -> None:
                self.rec = Recommender.from_config(CFG, llm=FakeLLM())
                self.dataset, self.config = self.rec.dataset, self.rec.config

            def recommend(self, req):
                if req.user_id in ("u001", "u002"):
                    time.sleep(1.0)
                return self.rec.recommend(req)

        return SlowFirst()

    rows = [{"user_id": f"u{u:03d}", "k": 2} for u in range(1, 13)]
    src = write_requests(tmp_path / "req.jsonl", rows)
    out = tmp_path / "ray.jsonl"
    report = run_batch(src, out, engine="ray", config=CFG, recommender_factory=factory, concurrency=2,
                       batch_size=2)
    assert report.done == 12
    assert [json.loads(t)["line"] for t in out.read_text().splitlines()] == list(range(1, 13))


def test_ray_retries_failed_lines_when_asked(local_ray, tmp_path):
    """retry_failed=True reruns the lines of the errors file under Ray as under local."""
    import json

    src = write_requests(tmp_path / "req.jsonl", [GOOD[0], GOOD[1], {"user_id": "nobody"}])
    out = tmp_path / "out.jsonl"
    run_batch(src, out, config=CFG)
    first, second = out.read_text().splitlines(keepends=True)
    out.write_text(first)  # as if line 2 had timed out
    errors = tmp_path / "out.jsonl.errors.jsonl"
    errors.write_text('{"line": 2, "error": "TimeoutError", "reason": "backend timed out"}\n' + errors.read_text())
    report = run_batch(src, out, engine="ray", config=CFG)
    assert report.processed == 0 and [f.line for f in report.failed] == [2, 3]
    report = run_batch(src, out, engine="ray", config=CFG, retry_failed=True)
    assert report.processed == 2 and report.done == 2 and [f.line for f in report.failed] == [3]
    assert json.loads(out.read_text().splitlines()[1])["items"] == json.loads(second)["items"]
    assert [json.loads(t)["line"] for t in errors.read_text().splitlines()] == [3]
    assert json.loads((tmp_path / "out.jsonl.meta.json").read_text())["failed"] == 1


def test_ray_refuses_a_recommender_and_a_config_at_once(rec):
    """The actors ran config= and silently ignored the given recommender."""
    from llmrank.errors import ConfigError

    with pytest.raises(ConfigError, match="not both"):
        RayBatchEngine(rec, config=CFG)
