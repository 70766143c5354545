"""``llmrank rerank``: the LLM reranker over given candidates.

* ``llmrank rerank IN.jsonl [OUT.jsonl]``: a batch job through ``llmrank.batch.run_batch``
  (one request per line, the body of POST /recommend plus optional ``candidates``; bad lines
  reported and skipped, resumable, engines ``local`` or ``ray``);
* ``llmrank rerank --user ID --items a,b,c``: one request through ``Recommender.rerank``,
  showing each candidate's label and label score (no retrieval, no index built)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from llmrank.cli.common import (
    JsonOpt,
    VerboseOpt,
    console,
    err_console,
    exit_if_nothing_succeeded,
    print_json,
    setup_logging,
)
from llmrank.cli.index import ConfigOpt, DataDirOpt, DatasetOpt
from llmrank.cli.recommend import (
    AdapterOpt,
    BackendOpt,
    IndexOpt,
    ModelOpt,
    PermOpt,
    RetrieverOpt,
    SetOpt,
    build_recommender,
    pipeline_config,
    response_json,
    show_response,
)
from llmrank.errors import EmptyHistoryError, UnknownItemError
from llmrank.registry import batch_engines


class NoRetriever:
    """Stands in for the retriever when candidates are given: nothing is embedded or indexed."""

    name = "none"

    def retrieve(self, **_: Any) -> list[Any]:
        raise EmptyHistoryError("this command reranks given candidates; it has no retriever")


def split_ids(values: list[str] | None) -> list[str]:
    """'a,b' and repeated flags alike, order kept."""
    return [v.strip() for raw in values or [] for v in raw.split(",") if v.strip()]


def rerank(
    input_path: Path | None = typer.Argument(None, metavar="IN.jsonl", help="Batch mode: JSON-lines requests."),
    output_path: Path | None = typer.Argument(None, metavar="OUT.jsonl",
                                              help="Batch output (default: IN.reranked.jsonl; errors in OUT.jsonl.errors.jsonl)."),
    user: str | None = typer.Option(None, "--user", "-u", help="User id whose history conditions the ranking."),
    items: list[str] | None = typer.Option(None, "--items", help="Candidate item ids, comma-separated (repeatable)."),
    history: list[str] | None = typer.Option(None, "--history", help="Explicit history item ids (instead of the user's)."),
    text: str | None = typer.Option(None, "--text", "-t", help="Free-text request shown to the model."),
    k: int | None = typer.Option(None, "-k", "--k", min=1, help="Items to keep (default: all candidates)."),
    explain: bool = typer.Option(False, "--explain/--no-explain", help="Write explanations for the kept items."),
    engine: str = typer.Option("local", "--engine", help="Batch engine: " + ", ".join(batch_engines.names()) + "."),
    workers: int = typer.Option(1, "--workers", min=1, help="Batch: worker processes (local) or Ray actors (ray)."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Batch: requests per batch (synced after each)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Batch: start over instead of resuming."),
    retry_failed: bool = typer.Option(False, "--retry-failed",
                                      help="Batch: on resume, run the lines in the errors file again "
                                           "(a timeout, a server that was down)."),
    config: Path | None = ConfigOpt,
    dataset: str | None = DatasetOpt,
    data_dir: str | None = DataDirOpt,
    index: Path | None = IndexOpt,
    retriever: str | None = RetrieverOpt,
    backend: str | None = BackendOpt,
    model: str | None = ModelOpt,
    adapter: str | None = AdapterOpt,
    permutations: int | None = PermOpt,
    sets: list[str] | None = SetOpt,
    json_out: bool = JsonOpt,
    verbose: bool = VerboseOpt,
) -> None:
    """Rerank given candidates with the LLM: one request (--user/--items) or a JSON-lines batch."""
    setup_logging(verbose)
    cfg = pipeline_config(config, dataset=dataset, data_dir=data_dir, index=index, retriever=retriever,
                          backend=backend, model=model, adapter=adapter, permutations=permutations,
                          rerank=True, sets=sets)
    if input_path is not None:
        if user or items or history or text:
            raise typer.BadParameter("batch mode (IN.jsonl) takes its requests from the file, "
                                     "not from --user/--items/--history/--text")
        _batch(cfg, input_path, output_path, engine=engine, workers=workers, batch_size=batch_size,
               overwrite=overwrite, retry_failed=retry_failed, json_out=json_out)
        return
    candidates = split_ids(items)
    if not candidates:
        raise typer.BadParameter("give --items id1,id2,... (with --user, --history or --text), or IN.jsonl")
    if user is None and not history and not text:
        raise typer.BadParameter("give --user ID, --history ids or --text \"...\"")
    _single(cfg, user, candidates, split_ids(history) or None, text, k, explain, json_out)


def _single(cfg: Any, user: str | None, candidates: list[str], history: list[str] | None,
            text: str | None, k: int | None, explain: bool, json_out: bool) -> None:
    from llmrank.records import RecRequest

    rec = build_recommender(cfg, quiet=json_out,
                            retriever=None if cfg.index.path else NoRetriever())
    unknown = [i for i in candidates + (history or []) if i not in rec.dataset.items]
    if unknown:
        raise UnknownItemError(f"not in catalog {rec.dataset.name!r}: {', '.join(unknown[:10])}"
                               + (f" (+{len(unknown) - 10} more)" if len(unknown) > 10 else ""))
    uniq = list(dict.fromkeys(candidates))
    req = RecRequest(user_id=user, history=history, text=text, k=k or len(uniq), explain=explain)
    resp = rec.rerank(req, uniq)
    labels = _given_labels(rec, uniq)
    if json_out:
        print_json(response_json(rec, resp, candidates=uniq, labels=labels))
        return
    who = f"user {user}" if user else ("the given history" if history else repr(text))
    show_response(rec, resp, f"{len(uniq)} candidates reranked for {who} ({rec.dataset.name})",
                  labels=labels, retrieval=False)


def _given_labels(rec: Any, candidates: list[str]) -> dict[str, str]:
    """The label each candidate carries in the prompt of the given order (permutation 0),
    when they all fit in one prompt; windows/tournaments relabel, so none then."""
    if rec.reranker is None or len(candidates) > rec.reranker.scorer.max_labels:
        return {}
    alphabet = rec.reranker.builder.alphabet
    return {item_id: alphabet[j] for j, item_id in enumerate(candidates)}


def _batch(cfg: Any, input_path: Path, output_path: Path | None, *, engine: str, workers: int,
           batch_size: int, overwrite: bool, retry_failed: bool, json_out: bool) -> None:
    from llmrank.batch import run_batch
    from llmrank.cli.common import progress_bar
    from llmrank.errors import DataError

    if not input_path.is_file():
        raise DataError(f"batch input not found: {input_path}")
    out = output_path or input_path.with_name(input_path.name.removesuffix(".jsonl") + ".reranked.jsonl")
    options: dict[str, Any] = {"batch_size": batch_size}
    if engine == "local":
        options["workers"] = workers
    elif engine == "ray":
        options["concurrency"] = workers  # one actor (one Recommender) per worker
    with progress_bar(not json_out) as progress:
        task = progress.add_task(escape(f"reranking {input_path.name}"), total=None)

        def update(done: int, total: int | None) -> None:
            progress.update(task, completed=done, total=total)

        report = run_batch(input_path, out, engine, config=cfg, overwrite=overwrite,
                           retry_failed=retry_failed, progress=update, **options)
    if json_out:
        print_json(report.to_dict())
    else:
        _show_report(input_path, report)
    exit_if_nothing_succeeded(report.done, len(report.failed), "requests")


def _show_report(input_path: Path, report: Any) -> None:
    table = Table(title=escape(f"batch rerank: {input_path} -> {report.out_path}"), show_header=False)
    for key, value in (("engine", report.engine), ("requests", report.total), ("done", report.done),
                       ("failed", len(report.failed)), ("resumed (skipped)", report.resumed),
                       ("this run", f"{report.processed} in {report.seconds:.1f}s "
                                    f"({report.throughput:.2f} req/s)")):
        table.add_row(key, escape(str(value)))
    console.print(table)
    for f in report.failed[:10]:
        err_console.print(f"[yellow]line {f.line}:[/] {escape(f'{f.error}: {f.reason}')}", highlight=False)
    if len(report.failed) > 10:
        err_console.print(f"... {len(report.failed) - 10} more in {escape(str(report.errors_path))}",
                          highlight=False)


def register(app: typer.Typer) -> None:
    app.command("rerank")(rerank)
