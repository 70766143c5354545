"""Batch reranking: many requests through the Recommender, resumable, with bad lines
reported instead of fatal. Engines register in ``llmrank.registry.batch_engines``:
``local`` (one process or a worker pool) and ``ray`` (Ray Data actors, past one machine).

    from llmrank.batch import run_batch
    report = run_batch("requests.jsonl", "out.jsonl", engine="local", config="deploy.toml")
"""

from __future__ import annotations

from llmrank.batch.base import BatchEngine, BatchProgress, BatchReport, FailedLine, run_batch

__all__ = ["BatchEngine", "BatchProgress", "BatchReport", "FailedLine", "run_batch"]
