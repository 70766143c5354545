"""The ``ray`` batch engine: Ray Data over a pool of actors, each holding one Recommender.

    ray.data.from_items(pending jobs, ``window`` at a time) -> map_batches(RecommenderWorker, ...)
    -> streamed back to the driver in input order, which appends to the same JSON-lines output
       as ``local``

Why actors: a Recommender loads a model and an index once; a class-based UDF keeps it loaded
across batches. With the vllm reranker backend each actor asks Ray for one GPU
(``num_gpus_per_worker``), so there is one vLLM engine per GPU worker. Why the driver writes
the output instead of ``Dataset.write_json``: write_json produces a folder of shards only as
blocks complete and cannot resume mid-run; streaming results back through ``iter_batches``
keeps the engines' shared promises (per-line resume, bad lines reported, the same files as
the local engine) at the cost of one small JSON line per request through the driver, which
is negligible next to an LLM call. Jobs travel as JSON strings so Arrow never has to infer a
schema for optional nested fields.

When Ray is not initialised yet, the engine calls ``ray.init`` with Ray's own rules for
finding a cluster (``RAY_ADDRESS``, else the latest cluster started on this machine, else a
new local instance on all CPUs, or on ``num_cpus`` when given); ``address="auto"`` (or any
address) joins that cluster. ``shutdown=True`` shuts Ray down at the end of the run."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmrank._optional import require
from llmrank.batch.base import (
    BatchProgress,
    BatchReport,
    RequestSource,
    refuse_recommender_with_config,
)
from llmrank.batch.jobs import Job, run_job
from llmrank.batch.runner import BatchRun

if TYPE_CHECKING:
    from llmrank.recommender import Recommender

log = logging.getLogger(__name__)


class RecommenderWorker:
    """The Ray Data UDF: built once per actor, called once per batch."""

    def __init__(self, config: dict[str, Any] | None = None,
                 factory: Callable[[], Recommender] | None = None) -> None:
        if factory is not None:
            self.rec = factory()
        else:
            from llmrank.recommender import Recommender

            self.rec = Recommender.from_config(config)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        lines = [int(x) for x in batch["line"]]
        requests = [json.loads(str(x)) for x in batch["request"]]
        results = [run_job(self.rec, Job(line, req)) for line, req in zip(lines, requests, strict=True)]
        return {"line": lines, "result": [json.dumps(r, allow_nan=False) for r in results]}


class RayBatchEngine:
    name = "ray"

    def __init__(self, recommender: Recommender | None = None, *, config: Any = None,
                 overrides: dict[str, Any] | None = None,
                 recommender_factory: Callable[[], Recommender] | None = None,
                 concurrency: int = 1, batch_size: int = 16, num_cpus_per_worker: float = 1.0,
                 num_gpus_per_worker: float | None = None, address: str | None = None,
                 num_cpus: int | None = None, shutdown: bool = False, window: int = 50_000) -> None:
        from llmrank.config import load_config

        refuse_recommender_with_config(recommender, config, overrides)
        if recommender is not None and recommender_factory is None:
            log.warning("the ray engine builds one Recommender per actor from recommender.config; "
                        "objects injected into the given Recommender are not shipped")
            config = recommender.config
        self.config = load_config(config, overrides)
        self.factory = recommender_factory
        self.concurrency = max(1, int(concurrency))
        self.batch_size = max(1, int(batch_size))
        self.num_cpus_per_worker = num_cpus_per_worker
        if num_gpus_per_worker is None:  # one vLLM engine per GPU worker
            num_gpus_per_worker = 1.0 if self.config.reranker.backend == "vllm" else 0.0
        self.num_gpus_per_worker = num_gpus_per_worker
        self.address = address
        self.num_cpus = num_cpus
        self.shutdown = shutdown
        # jobs per Ray Data run: bounds the driver's memory on a huge input; each run starts its
        # actors (loads the model) again, so it stays large
        self.window = max(1, int(window))

    def _init_ray(self) -> Any:
        ray = require("ray", extra="ray")
        require("ray.data", extra="ray")
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                      "ignore_reinit_error": True}
            if self.address:
                kwargs["address"] = self.address
            elif self.num_cpus:
                kwargs["num_cpus"] = self.num_cpus
            ray.init(**kwargs)
        return ray

    def run(self, requests: RequestSource, out: str | Path, *, overwrite: bool = False,
            retry_failed: bool = False, progress: BatchProgress | None = None) -> BatchReport:
        with BatchRun(self.name, requests, out, config=self.config, overwrite=overwrite,
                      retry_failed=retry_failed, progress=progress) as run:
            jobs = run.pending()
            ray = None
            try:
                while window := list(islice(jobs, self.window)):  # streamed, a window at a time
                    ray = ray or self._init_ray()
                    self._execute(ray, run, [{"line": j.line, "request": json.dumps(j.request)}
                                             for j in window])
            finally:
                if ray is not None and self.shutdown:
                    ray.shutdown()
        return run.report

    def _execute(self, ray: Any, run: BatchRun, rows: list[dict[str, Any]]) -> None:
        options = ray.data.DataContext.get_current().execution_options
        preserve_order = options.preserve_order
        options.preserve_order = True  # results in input order, as the local engine writes them
        try:
            ds = ray.data.from_items(rows)
            ds = ds.map_batches(
                RecommenderWorker,
                fn_constructor_kwargs={"config": self.config.model_dump(), "factory": self.factory},
                batch_size=self.batch_size,
                compute=ray.data.ActorPoolStrategy(size=self.concurrency),
                num_cpus=self.num_cpus_per_worker, num_gpus=self.num_gpus_per_worker or None,
            )
            for batch in ds.iter_batches(batch_size=self.batch_size, batch_format="default"):
                for text in batch["result"]:
                    run.record(json.loads(str(text)))
                run.checkpoint()
        finally:
            options.preserve_order = preserve_order
