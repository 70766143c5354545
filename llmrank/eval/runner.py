"""Shard users, evaluate shards (in worker processes if asked), checkpoint each finished
shard, and resume from the checkpoints.

Users are cut into fixed shards (``shard_size`` consecutive eligible users). A finished shard
is written atomically to ``<dir>/shards/NNNNN.npz``; a run that is interrupted (Ctrl-C, kill,
a crash) and started again skips finished shards. Because each user's outcome depends only
on (seed, user) and the deterministically fitted ranker, the resumed run's numbers equal an
uninterrupted run's. A manifest stores a fingerprint of everything that affects results;
resuming with a different config is refused instead of silently mixing results.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing as mp
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

import numpy as np

from llmrank.data.splits import LeaveOneOut
from llmrank.errors import ConfigError
from llmrank.eval.base import Ranker
from llmrank.eval.config import EvalProtocol
from llmrank.eval.protocols import ProtocolContext, ShardResult, eval_users, evaluate_shard
from llmrank.eval.results import BeyondInputs, RankerResult, summarize

log = logging.getLogger(__name__)

Progress = Callable[[int], None]  # called with the number of users just finished


class ShardStore:
    """Checkpoints of one (ranker, stage, protocol): a folder, or memory when ``root`` is None."""

    def __init__(self, root: Path | None, fingerprint: str = "") -> None:
        self.root = root
        self.fingerprint = fingerprint
        self._memory: dict[int, ShardResult] = {}
        if root is not None:
            (root / "shards").mkdir(parents=True, exist_ok=True)
            self._check_manifest()

    def _check_manifest(self) -> None:
        assert self.root is not None
        path = self.root / "manifest.json"
        if path.is_file():
            old = json.loads(path.read_text()).get("fingerprint")
            if old != self.fingerprint:
                raise ConfigError(
                    f"{self.root} holds checkpoints of a different configuration or dataset "
                    f"(fingerprint {old} != {self.fingerprint}); use a new --out or --fresh")
        else:
            self.write_meta({})

    def write_meta(self, extra: dict[str, Any]) -> None:
        if self.root is None:
            return
        path = self.root / "manifest.json"
        meta = json.loads(path.read_text()) if path.is_file() else {}
        meta.update({"fingerprint": self.fingerprint, **extra})
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(meta, indent=2))
        tmp.replace(path)

    def read_meta(self) -> dict[str, Any]:
        if self.root is None or not (self.root / "manifest.json").is_file():
            return {}
        data: dict[str, Any] = json.loads((self.root / "manifest.json").read_text())
        return data

    def _path(self, index: int) -> Path:
        assert self.root is not None
        return self.root / "shards" / f"{index:05d}.npz"

    def has(self, index: int) -> bool:
        return index in self._memory if self.root is None else self._path(index).is_file()

    def save(self, index: int, result: ShardResult) -> None:
        if self.root is None:
            self._memory[index] = result
        else:
            result.save(self._path(index))

    def load(self, index: int) -> ShardResult:
        return self._memory[index] if self.root is None else ShardResult.load(self._path(index))


def make_shards(users: np.ndarray, shard_size: int) -> list[np.ndarray]:
    if shard_size < 1:
        raise ValueError("shard_size must be >= 1")
    return [users[i: i + shard_size] for i in range(0, len(users), shard_size)]


# Set in the parent just before forking workers; workers inherit it (no pickling of models).
_FORK_STATE: tuple[Ranker, ProtocolContext] | None = None


def _work(users: np.ndarray) -> ShardResult:
    assert _FORK_STATE is not None, "worker started without state (needs the fork start method)"
    ranker, ctx = _FORK_STATE
    return evaluate_shard(ranker, ctx, users)


def run_shards(ranker: Ranker, ctx: ProtocolContext, shards: list[np.ndarray], store: ShardStore,
               *, workers: int = 1, progress: Progress | None = None) -> ShardResult:
    """Evaluate the shards not yet in ``store`` and return all shards concatenated."""
    todo = [i for i in range(len(shards)) if not store.has(i)]
    done_users = sum(len(shards[i]) for i in range(len(shards)) if i not in set(todo))
    if progress and done_users:
        progress(done_users)
    if todo:
        log.info("%s: %d of %d shards to evaluate", ranker.name, len(todo), len(shards))
    if workers <= 1 or len(todo) <= 1 or "fork" not in mp.get_all_start_methods():
        for i in todo:
            store.save(i, evaluate_shard(ranker, ctx, shards[i]))
            if progress:
                progress(len(shards[i]))
    else:
        _run_parallel(ranker, ctx, shards, todo, store, workers, progress)
    return ShardResult.concat([store.load(i) for i in range(len(shards))])


def _run_parallel(ranker: Ranker, ctx: ProtocolContext, shards: list[np.ndarray], todo: list[int],
                  store: ShardStore, workers: int, progress: Progress | None) -> None:
    global _FORK_STATE
    _FORK_STATE = (ranker, ctx)
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("fork"))
    try:
        pending: dict[Future[ShardResult], int] = {pool.submit(_work, shards[i]): i for i in todo}
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                i = pending.pop(fut)
                store.save(i, fut.result())
                if progress:
                    progress(len(shards[i]))
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    finally:
        _FORK_STATE = None
    pool.shutdown(wait=True)


def _call_fingerprint(split: LeaveOneOut, protocol: EvalProtocol, users: np.ndarray, seed: int,
                      shard_size: int, label: str, retriever: Ranker | None) -> str:
    """What one evaluate_ranker call's per-user results depend on, as far as it can see:
    the split itself too (ids, training histories, targets), not only the users' targets."""
    from llmrank.eval.data import split_digest

    h = hashlib.sha256(json.dumps({
        "protocol": protocol.model_dump(), "seed": seed, "shard_size": shard_size,
        "label": label, "retriever": None if retriever is None else retriever.name,
        "split": split_digest(split),
    }, sort_keys=True, default=str).encode())
    h.update(np.ascontiguousarray(users, dtype=np.int64).tobytes())
    targets = [split.target(int(u), protocol.stage) for u in users]
    h.update(np.asarray(targets, dtype=np.int64).tobytes())
    return h.hexdigest()[:16]


def evaluate_ranker(
    ranker: Ranker,
    split: LeaveOneOut,
    protocol: EvalProtocol | None = None,
    *,
    seed: int = 0,
    label: str | None = None,
    retriever: Ranker | None = None,
    out_dir: Path | None = None,
    fingerprint: str = "",
    workers: int = 1,
    shard_size: int = 64,
    fit: bool = True,
    beyond: BeyondInputs | None = None,
    progress: Progress | None = None,
) -> RankerResult:
    """Evaluate one ranker under one protocol: the Python entry point for any Ranker.

    ``fit`` calls ``ranker.fit(split, protocol.stage)`` first (skipped when every shard is
    already checkpointed in ``out_dir``). ``retriever`` (fitted) is required by the
    retriever protocol. Without ``out_dir`` nothing is written and nothing can resume.
    ``fingerprint`` names what the checkpoints depend on (run_eval passes the config's);
    without one, ``out_dir`` is keyed by what this call knows (protocol, seed, shard size,
    label, retriever name, the split's ids, histories and targets), so another protocol,
    stage, seed or data in the same folder is refused; the ranker's own options are the
    caller's to fingerprint."""
    protocol = protocol or EvalProtocol()
    ctx = ProtocolContext(split, protocol, seed, retriever)
    users = eval_users(split, protocol)
    shards = make_shards(users, shard_size)
    if out_dir is not None and not fingerprint:
        fingerprint = _call_fingerprint(split, protocol, users, seed, shard_size,
                                        label or ranker.name, retriever)
    store = ShardStore(out_dir, fingerprint)
    fit_seconds = float(store.read_meta().get("fit_seconds", 0.0))
    if fit and not all(store.has(i) for i in range(len(shards))):
        start = time.perf_counter()
        ranker.fit(split, protocol.stage)
        fit_seconds = time.perf_counter() - start
        store.write_meta({"fit_seconds": fit_seconds, "n_shards": len(shards),
                          "n_users": len(users)})
    outcome = run_shards(ranker, ctx, shards, store, workers=workers, progress=progress)
    if not np.array_equal(outcome.users, users):
        raise RuntimeError("checkpointed shards do not match the users to evaluate")
    return summarize(label or ranker.name, protocol.name, protocol.stage, outcome,
                     list(protocol.ks), seed, beyond, fit_seconds)
