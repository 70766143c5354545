"""Parallel and resumable runs give the numbers of one uninterrupted serial run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from llmrank.baselines import ItemKNNRanker
from llmrank.errors import ConfigError
from llmrank.eval import load_eval_config, run_eval
from llmrank.eval.config import EvalProtocol
from llmrank.eval.runner import evaluate_ranker
from llmrank.eval.synthetic import write_movielens_csv

ROOT = Path(__file__).resolve().parents[2]


class _FailsAfter(ItemKNNRanker):
    """Item-kNN that crashes once it has scored ``limit`` users (an interrupted run)."""

    def __init__(self, limit: int | None) -> None:
        super().__init__(neighbors=20)
        self.limit, self.seen = limit, 0

    def score(self, users, candidates, stage):
        self.seen += len(users)
        if self.limit is not None and self.seen > self.limit:
            raise KeyboardInterrupt("simulated Ctrl-C")
        return super().score(users, candidates, stage)


def _same(a, b):
    assert np.array_equal(a.outcome.users, b.outcome.users)
    assert np.array_equal(a.outcome.ranks, b.outcome.ranks)
    assert np.array_equal(a.outcome.lists, b.outcome.lists)
    assert {k: v.to_dict() for k, v in a.summary.items()} == \
        {k: v.to_dict() for k, v in b.summary.items()}


@pytest.mark.parametrize("protocol", ["full", "candidates"])
def test_interrupt_then_resume_equals_uninterrupted(synth_split, tmp_path, protocol):
    proto = EvalProtocol(name=protocol)
    ref = evaluate_ranker(_FailsAfter(None), synth_split, proto, shard_size=16)
    with pytest.raises(KeyboardInterrupt):
        evaluate_ranker(_FailsAfter(50), synth_split, proto, shard_size=16, out_dir=tmp_path)
    done = sorted((tmp_path / "shards").glob("*.npz"))
    assert len(done) == 3  # 3 shards of 16 users finished before the crash
    resumed_ranker = _FailsAfter(None)
    resumed = evaluate_ranker(resumed_ranker, synth_split, proto, shard_size=16, out_dir=tmp_path)
    assert resumed_ranker.seen == resumed.n_users - 48  # finished shards were not redone
    _same(ref, resumed)


class _PidLog(ItemKNNRanker):
    """Item-kNN that appends the pid of the process scoring each batch of users to a file
    (a forked worker's memory does not come back; the file does)."""

    def __init__(self, path: Path) -> None:
        super().__init__(neighbors=20)
        self.path = path

    def score(self, users, candidates, stage):
        with open(self.path, "a") as f:
            f.write(f"{os.getpid()}\n")
        return super().score(users, candidates, stage)


def test_workers_equal_serial(synth_split, tmp_path, monkeypatch):
    import llmrank.eval.runner as runner

    proto = EvalProtocol(name="candidates", ties="random")
    serial = evaluate_ranker(ItemKNNRanker(neighbors=20), synth_split, proto, shard_size=10)
    calls: list[int] = []
    real = runner._run_parallel

    def spy(*args, **kwargs):
        calls.append(len(args[3]))  # the shards to do
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "_run_parallel", spy)
    pids = tmp_path / "pids.txt"
    parallel = evaluate_ranker(_PidLog(pids), synth_split, proto, shard_size=10, workers=2)
    _same(serial, parallel)
    n_shards = -(-len(parallel.outcome.users) // 10)
    assert n_shards > 1 and calls == [n_shards]  # every shard went to the worker pool
    scored_in = pids.read_text().split()
    assert len(scored_in) >= n_shards
    assert str(os.getpid()) not in scored_in  # nothing was scored in this process


def test_resume_with_other_config_is_refused(synth, tmp_path):
    base = {"name": "x", "protocol": {"name": "candidates", "max_users": 20},
            "rankers": [{"name": "random"}],
            "run": {"out": str(tmp_path), "plots": False, "diversity_vectors": "none"}}
    run_eval(load_eval_config(base), dataset=synth)
    other = {**base, "seed": 1}
    with pytest.raises(ConfigError, match="different configuration"):
        run_eval(load_eval_config(other), dataset=synth)
    run_eval(load_eval_config(other), dataset=synth, fresh=True)  # --fresh starts over


def test_resume_with_another_in_memory_dataset_is_refused(synth, tmp_path):
    """The config names the data, but a Python caller passes the dataset itself: the same
    config with another dataset resumed the first one's checkpoints and mixed the two."""
    from llmrank.eval.synthetic import synthetic_dataset

    cfg = {"name": "x", "protocol": {"name": "candidates", "max_users": 20},
           "rankers": [{"name": "random"}],
           "run": {"out": str(tmp_path), "plots": False, "diversity_vectors": "none"}}
    run_eval(load_eval_config(cfg), dataset=synth)
    run_eval(load_eval_config(cfg), dataset=synth)  # the same data resumes
    other = synthetic_dataset(n_users=120, n_items=200, seed=4)
    with pytest.raises(ConfigError, match="different configuration"):
        run_eval(load_eval_config(cfg), dataset=other)


_SCRIPT = """
import sys, time
from llmrank.baselines import ItemKNNRanker
from llmrank.eval import load_eval_config, run_eval
from llmrank.registry import rankers

class Slow(ItemKNNRanker):
    def score(self, users, candidates, stage):
        time.sleep(float(sys.argv[3]))
        return super().score(users, candidates, stage)

rankers.register("slow-knn", Slow)
cfg = load_eval_config({
    "name": "kill", "data": {"dataset": sys.argv[1]},
    "protocol": {"name": "full"},
    "rankers": [{"name": "slow-knn", "label": "knn", "options": {"neighbors": 20}}],
    "run": {"out": sys.argv[2], "shard_size": 8, "plots": False},
})
rep = run_eval(cfg)
print(rep.result("knn").summary["ndcg@10"].mean)
"""


def _run(script: Path, data: Path, out: Path, delay: float) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, str(script), str(data), str(out), str(delay)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_killed_process_resumes_with_identical_numbers(synth, tmp_path):
    data = write_movielens_csv(synth, tmp_path / "data")
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(_SCRIPT))
    shards = tmp_path / "out" / "checkpoints" / "knn" / "shards"
    proc = _run(script, data, tmp_path / "out", 0.3)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(shards.glob("*.npz"))) < 3:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    n_done = len(list(shards.glob("[0-9]*.npz")))
    assert 3 <= n_done < 15, "the run must be killed part-way"
    resumed = _run(script, data, tmp_path / "out", 0.0)
    fresh = _run(script, data, tmp_path / "fresh", 0.0)
    out_resumed, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    out_fresh, err = fresh.communicate(timeout=120)
    assert fresh.returncode == 0, err
    assert out_resumed.strip() == out_fresh.strip() != ""
    m_res = (tmp_path / "out" / "runs" / "knn.jsonl").read_text()
    assert m_res == (tmp_path / "fresh" / "runs" / "knn.jsonl").read_text()


def test_python_resume_without_fingerprint_refuses_another_protocol(synth_split, tmp_path):
    """evaluate_ranker(out_dir=...) from Python without a fingerprint: a second call with
    another protocol, stage or seed in the same folder loaded the first call's shards and
    reported them under the new protocol (full-ranking ranks as 20-candidate numbers)."""
    from llmrank.baselines import MostPopularRanker

    full = evaluate_ranker(MostPopularRanker(), synth_split, EvalProtocol(name="full"),
                           out_dir=tmp_path)
    again = evaluate_ranker(MostPopularRanker(), synth_split, EvalProtocol(name="full"),
                            out_dir=tmp_path)  # the same evaluation still resumes
    assert np.array_equal(full.outcome.ranks, again.outcome.ranks)
    for other in (EvalProtocol(name="candidates"), EvalProtocol(name="full", stage="valid")):
        with pytest.raises(ConfigError, match="different configuration"):
            evaluate_ranker(MostPopularRanker(), synth_split, other, out_dir=tmp_path)
    with pytest.raises(ConfigError, match="different configuration"):
        evaluate_ranker(MostPopularRanker(), synth_split, EvalProtocol(name="full"), seed=1,
                        out_dir=tmp_path)


def test_python_resume_without_fingerprint_refuses_other_training_data(synth_split, tmp_path):
    """evaluate_ranker(out_dir=...) without a fingerprint keyed the folder by the users and
    their targets only: a split with the same targets but other training histories (another
    data version, another filter) resumed the first split's shards and mixed the two."""
    from llmrank.baselines import MostPopularRanker
    from llmrank.data.splits import LeaveOneOut

    proto = EvalProtocol(name="full", max_users=40)
    evaluate_ranker(MostPopularRanker(), synth_split, proto, out_dir=tmp_path, shard_size=8)
    u = int(synth_split.eval_users()[0])
    train = list(synth_split.train)
    train[u] = train[u][1:]  # one training interaction fewer; users and targets unchanged
    other = LeaveOneOut(synth_split.dataset, train, synth_split.valid_target.copy(),
                        synth_split.test_target.copy())
    with pytest.raises(ConfigError, match="different configuration"):
        evaluate_ranker(MostPopularRanker(), other, proto, out_dir=tmp_path, shard_size=8)
