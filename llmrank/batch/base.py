"""The BatchEngine interface and its report.

A batch job reranks many requests: a JSON-lines file (one BatchLineModel per line, the same
body as POST /recommend, plus optional ``candidates`` for POST /rerank semantics) or an
iterable of RecRequests, into a JSON-lines output (one RecResponse per line, tagged with its
input line number). Every engine keeps the same promises:

* a bad line (malformed JSON, invalid fields, unknown user, ...) is reported with its line
  number and reason in ``<out>.errors.jsonl`` and skipped; it never stops the job;
* results are appended and synced every batch, so an interrupted job (Ctrl-C, kill, crash)
  resumes on re-run without redoing finished lines and without losing any written result;
* an existing output is never overwritten unless asked (``overwrite=True``);
* one job at a time writes an output (``<out>.lock``): a second one is refused (DataError);
* a failed line stays failed on resume unless asked (``retry_failed=True``: for passing
  failures such as a backend timeout); a retried line that succeeds moves to the output."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from llmrank.errors import ConfigError

if TYPE_CHECKING:
    from llmrank.records import RecRequest

# progress(processed_in_this_run, total_lines_or_None): drives CLI progress bars
BatchProgress = Callable[[int, int | None], None]
RequestSource = str | Path | Iterable[Any]  # a JSON-lines path, or RecRequests / BatchLineModels / dicts


@dataclass(frozen=True)
class FailedLine:
    line: int  # 1-based line number in the input (index + 1 for an iterable)
    reason: str
    error: str = "DataError"  # the exception type


MAX_FAILED_LISTED = 100


@dataclass
class BatchReport:
    """What a run did. ``done`` and ``failed`` cover the whole output (all runs of a resumed
    job); ``processed``, ``seconds`` and ``throughput`` cover this run only."""

    engine: str
    out_path: str
    errors_path: str
    total: int = 0  # input lines (requests) seen
    done: int = 0
    failed: list[FailedLine] = field(default_factory=list)
    resumed: int = 0  # lines finished by an earlier run and skipped now
    processed: int = 0  # lines handled in this run (succeeded or failed)
    seconds: float = 0.0

    @property
    def throughput(self) -> float:
        """Requests handled per second in this run."""
        return self.processed / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-able; ``failed`` lists the first MAX_FAILED_LISTED failed lines (a job over a
        broken input has one per line: the errors file holds them all), ``n_failed`` counts all."""
        out = asdict(self)
        out["failed"] = out["failed"][:MAX_FAILED_LISTED]
        out["throughput"] = round(self.throughput, 3)
        out["n_failed"] = len(self.failed)
        return out


def refuse_recommender_with_config(recommender: Any, config: Any, overrides: Any) -> None:
    """A built Recommender runs as it is: a config (or overrides) next to it would be what a
    resume is checked against while another one runs, so the two at once are refused."""
    if recommender is not None and (config is not None or overrides):
        raise ConfigError("pass recommender= or config= (with overrides=), not both: the resume "
                          "check must use the config that runs")


@runtime_checkable
class BatchEngine(Protocol):
    name: str

    def run(self, requests: RequestSource, out: str | Path, *, overwrite: bool = False,
            retry_failed: bool = False, progress: BatchProgress | None = None) -> BatchReport:
        """Process ``requests`` into ``out`` (JSON lines), resuming a previous run of the same
        input (and running its failed lines again with ``retry_failed``); returns the report."""
        ...


def run_batch(requests: RequestSource | Iterable[RecRequest], out: str | Path, engine: str = "local", *,
              recommender: Any = None, config: Any = None, overrides: dict[str, Any] | None = None,
              overwrite: bool = False, retry_failed: bool = False,
              progress: BatchProgress | None = None, **options: Any) -> BatchReport:
    """Run a batch job on the engine registered as ``engine`` ('local' or 'ray').

    ``recommender`` reuses a built Recommender (local engine, one worker); otherwise each
    worker builds one from ``config`` (a path, dict or Config) and ``overrides``. Not both
    (ConfigError): a resume is checked against the config that runs. Engine
    options: local ``workers``, ``batch_size``; ray ``concurrency``, ``batch_size``, ``window``,
    ``num_gpus_per_worker``, ``address``."""
    from llmrank.registry import batch_engines

    eng: BatchEngine = batch_engines.create(engine, recommender=recommender, config=config,
                                            overrides=overrides, **options)
    return eng.run(requests, out, overwrite=overwrite, retry_failed=retry_failed, progress=progress)
