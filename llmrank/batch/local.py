"""The ``local`` batch engine: one process, or a pool of worker processes on one machine.

With one worker the engine uses the Recommender it was given (or builds one from the config)
and handles the requests in batches of ``batch_size``, syncing the output after each batch.
With ``workers > 1`` every worker process builds its own Recommender from the config once
(a model per process: Recommenders are not shared across processes) and receives whole
batches; the parent writes the results in input order (a slow batch holds back the finished
ones after it). At most ``2 * workers`` batches are in flight, so a huge input never sits in
memory. Workers use the 'spawn' start method: forking a process that already runs torch
threads can deadlock."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmrank.batch.base import (
    BatchProgress,
    BatchReport,
    RequestSource,
    refuse_recommender_with_config,
)
from llmrank.batch.jobs import Job, run_job
from llmrank.batch.runner import BatchRun
from llmrank.errors import ConfigError

if TYPE_CHECKING:
    from llmrank.recommender import Recommender

log = logging.getLogger(__name__)


def _chunks(jobs: Iterator[Job], size: int) -> Iterator[list[Job]]:
    while chunk := list(islice(jobs, size)):
        yield chunk


# ---- worker process side ---------------------------------------------------------------
_WORKER_REC: Recommender | None = None


def _init_worker(config: Any, overrides: dict[str, Any] | None) -> None:
    global _WORKER_REC
    import os

    os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core per worker: the pool is the parallelism
    from llmrank.recommender import Recommender

    _WORKER_REC = Recommender.from_config(config, overrides)


def _work(chunk: list[Job]) -> list[dict[str, Any]]:
    assert _WORKER_REC is not None, "worker not initialised"
    return [run_job(_WORKER_REC, job) for job in chunk]


# ---- engine ----------------------------------------------------------------------------
class LocalBatchEngine:
    name = "local"

    def __init__(self, recommender: Recommender | None = None, *, config: Any = None,
                 overrides: dict[str, Any] | None = None, workers: int = 1,
                 batch_size: int = 32) -> None:
        refuse_recommender_with_config(recommender, config, overrides)
        if workers > 1 and config is None:
            raise ConfigError("workers > 1 build one Recommender per process: pass config= "
                              "instead of a built recommender")
        self.recommender = recommender
        self.config = config
        self.overrides = overrides
        self.workers = max(1, int(workers))
        self.batch_size = max(1, int(batch_size))

    def _config_for_key(self) -> Any:
        """The config that runs: the given Recommender's, or the one workers are built from."""
        if self.recommender is not None:
            return self.recommender.config
        from llmrank.config import load_config

        return load_config(self.config, self.overrides)

    def run(self, requests: RequestSource, out: str | Path, *, overwrite: bool = False,
            retry_failed: bool = False, progress: BatchProgress | None = None) -> BatchReport:
        with BatchRun(self.name, requests, out, config=self._config_for_key(), overwrite=overwrite,
                      retry_failed=retry_failed, progress=progress) as run:
            if self.workers == 1:
                self._serial(run)
            else:
                self._pool(run)
        return run.report

    def _serial(self, run: BatchRun) -> None:
        rec = self.recommender
        for chunk in _chunks(run.pending(), self.batch_size):
            if rec is None:  # built only when there is work left
                from llmrank.recommender import Recommender

                rec = self.recommender = Recommender.from_config(self.config, self.overrides)
            for job in chunk:
                run.record(run_job(rec, job))
            run.checkpoint()

    def _pool(self, run: BatchRun) -> None:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        chunks = _chunks(run.pending(), self.batch_size)
        pool = ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_init_worker,
                                   initargs=(self.config, self.overrides))
        in_flight: deque[Future[list[dict[str, Any]]]] = deque()  # in submission (input) order
        try:
            for chunk in chunks:
                in_flight.append(pool.submit(_work, chunk))
                if len(in_flight) >= 2 * self.workers:
                    self._write(run, in_flight.popleft())
            while in_flight:
                self._write(run, in_flight.popleft())
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)

    @staticmethod
    def _write(run: BatchRun, future: Future[list[dict[str, Any]]]) -> None:
        """Wait for the oldest batch and write it: the output stays in input order."""
        for result in future.result():
            run.record(result)
        run.checkpoint()
