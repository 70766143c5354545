"""``llmrank recommend --user ID | --text "..."``: one request through the whole pipeline
(``Recommender.recommend``: retrieve -> LLM rerank -> explore -> explain), shown as a table
with its trace (model, adapter, template and version, prompt tokens, seconds per stage).

The flags that pick data, index, retriever and LLM are shared with ``llmrank rerank`` and
``llmrank prompts render`` (``pipeline_config``); data flags are those of ``llmrank retrieve``."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape
from rich.table import Table

from llmrank.cli.common import (
    JsonOpt,
    VerboseOpt,
    console,
    err_console,
    parse_key_values,
    print_json,
    setup_logging,
    to_jsonable,
)
from llmrank.cli.index import (
    AllowOpt,
    AttrOpt,
    ConfigOpt,
    DataDirOpt,
    DatasetOpt,
    DenyOpt,
    GenreOpt,
    build_filters,
    make_config,
)
from llmrank.config import Config
from llmrank.registry import llms, retrievers

if TYPE_CHECKING:
    from llmrank.recommender import Recommender
    from llmrank.records import RecResponse

# ---- options shared by recommend, rerank and prompts render --------------------------------
IndexOpt = typer.Option(None, "--index", "-i", help="Index folder (else an index is built in memory over --dataset).")
RetrieverOpt = typer.Option(None, "--retriever", help="Retriever kind when building: " + ", ".join(retrievers.names()) + ".")
BackendOpt = typer.Option(None, "--backend", help="LLM backend: " + ", ".join(llms.names()) + " (default: the config's).")
ModelOpt = typer.Option(None, "--model", help="LLM: 'default' (offline SmolLM2-135M-Instruct), an HF id, a folder or a .gguf.")
AdapterOpt = typer.Option(None, "--adapter", help="LoRA adapter for the reranker (name or path).")
PermOpt = typer.Option(None, "--permutations", min=1, help="Candidate orderings averaged (position bias).")
SetOpt = typer.Option(None, "--set", help="Config override KEY=VALUE with a dotted key (repeatable), e.g. "
                      "reranker.options.base_url=http://127.0.0.1:8000/v1; VALUE is read as JSON when it parses.")


def pipeline_config(config: Path | None, *, dataset: str | None = None, data_dir: str | None = None,
                    index: Path | None = None, retriever: str | None = None, backend: str | None = None,
                    model: str | None = None, adapter: str | None = None, permutations: int | None = None,
                    rerank: bool | None = None, sets: list[str] | None = None) -> Config:
    """The config file (or defaults), then the flags, then ``--set`` overrides. An ``--index``
    that is not an index folder is an error: the recommender builds one in memory when
    ``index.path`` is missing, and a mistyped flag was silently ignored that way."""
    if index is not None:
        from llmrank.retrieve.manifest import read_manifest

        read_manifest(index)  # IndexError_ naming the folder and `llmrank index build`
    flags: dict[str, Any] = {
        "data.dataset": dataset, "data.data_dir": data_dir,
        "index.path": str(index) if index is not None else None, "retriever.kind": retriever,
        "reranker.backend": backend, "reranker.model": model, "reranker.adapter": adapter,
        "reranker.permutations": permutations, "reranker.enabled": rerank,
    }
    return make_config(config, {**flags, **parse_key_values(sets)})


@contextmanager
def loading(quiet: bool, what: str = "loading data, index and model") -> Iterator[None]:
    """A spinner on stderr while something slow happens (none with --json)."""
    if quiet:
        yield
        return
    with err_console.status(escape(what)):
        yield


def build_recommender(cfg: Config, *, quiet: bool, retriever: Any = None) -> Recommender:
    from llmrank.recommender import Recommender

    with loading(quiet):
        return Recommender.from_config(cfg, retriever=retriever, progress=not quiet)


# ---- output ----------------------------------------------------------------------------
def _fmt(value: float | None, digits: int = 3) -> str:
    return "" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def show_response(rec: Recommender, resp: RecResponse, title: str, *,
                  labels: dict[str, str] | None = None, retrieval: bool = True) -> None:
    """The ranked items (scores, explanations) and the trace of the request."""
    ds = rec.dataset
    explained = any(it.explanation for it in resp.items)
    explored = resp.policy != "greedy"
    table = Table(title=escape(title))
    table.add_column("#", justify="right")
    if labels:
        table.add_column("label")
    table.add_column("item")
    table.add_column("title")
    table.add_column("score", justify="right")
    table.add_column("LLM log-p", justify="right")
    table.add_column("p(label)", justify="right")
    if retrieval:
        table.add_column("retrieval", justify="right")
    if explored:
        table.add_column("propensity", justify="right")
    for it in resp.items:
        item = ds.items.get(it.item_id)
        name = f"{item.title} ({item.year})" if item is not None and item.year else (it.title or "")
        row = [str(it.position + 1)] + ([escape(labels.get(it.item_id, ""))] if labels else [])
        prob = math.exp(it.rerank_score) if it.rerank_score is not None else None
        row += [escape(it.item_id), escape(name), _fmt(it.score), _fmt(it.rerank_score), _fmt(prob)]
        if retrieval:
            row.append(_fmt(it.retrieval_score))
        if explored:
            row.append(_fmt(it.propensity))
        table.add_row(*row)
    console.print(table)
    if explained:  # below the table: sentences do not fit a column
        console.print("[bold]why[/]")
        for it in resp.items:
            console.print(f"  {it.position + 1}. {it.item_id}: {it.explanation or '-'}",
                          highlight=False, markup=False)
    show_trace(rec, resp)


def show_trace(rec: Recommender, resp: RecResponse) -> None:
    trace = resp.trace
    if trace.llm_calls:
        calls = Table(title="LLM calls", title_justify="left")
        for col in ("stage", "backend:model", "adapter", "template", "prompts", "tokens", "seconds"):
            calls.add_column(col, justify="right" if col in ("prompts", "tokens", "seconds") else "left")
        for c in trace.llm_calls:
            calls.add_row(escape(c.stage), escape(f"{c.backend}:{c.model}"), escape(c.adapter or "-"),
                          escape(f"{c.template}@{c.template_version}"),
                          str(c.n_prompts), str(c.prompt_tokens), f"{c.seconds:.3f}")
        console.print(calls)
    stages = ", ".join(f"{s} {sec:.3f}s" for s, sec in trace.stage_seconds.items())
    console.print(f"[dim]reranker: {escape(rec.describe_reranker())}   policy: {escape(resp.policy)}   "
                  f"request {resp.request_id}[/]", highlight=False)
    console.print(f"[dim]time per stage: {stages}[/]", highlight=False)
    for note in trace.notes:
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)


def response_json(rec: Recommender, resp: RecResponse, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = to_jsonable(resp)
    return {**extra, "reranker": rec.describe_reranker(), "dataset": rec.dataset.name, **body}


# ---- command ---------------------------------------------------------------------------
def recommend(
    user: str | None = typer.Option(None, "--user", "-u", help="User id (history from the dataset)."),
    text: str | None = typer.Option(None, "--text", "-t", help="Free-text request (alone or with --user)."),
    k: int = typer.Option(10, "-k", "--k", min=1, help="Items to show."),
    n_candidates: int | None = typer.Option(None, "--candidates", "-n", min=1,
                                            help="Candidates retrieved for the reranker (default: the config's)."),
    explain: bool = typer.Option(False, "--explain/--no-explain", help="Write explanations for the shown items."),
    explore: bool | None = typer.Option(None, "--explore/--no-explore",
                                        help="Let the configured policy explore (default: when the "
                                             "config's policy is not greedy)."),
    rerank: bool | None = typer.Option(None, "--rerank/--no-rerank", help="Rerank with the LLM (default: the config's)."),
    genre: list[str] | None = GenreOpt,
    attr: list[str] | None = AttrOpt,
    deny: list[str] | None = DenyOpt,
    allow: list[str] | None = AllowOpt,
    include_seen: bool = typer.Option(False, "--include-seen", help="Allow items in the history."),
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
    """Recommend for one user or free-text request: retrieve, rerank with the LLM, explain."""
    from llmrank.records import RecRequest

    setup_logging(verbose)
    if user is None and not text:
        raise typer.BadParameter("give --user ID or --text \"...\" (or both)")
    cfg = pipeline_config(config, dataset=dataset, data_dir=data_dir, index=index, retriever=retriever,
                          backend=backend, model=model, adapter=adapter, permutations=permutations,
                          rerank=rerank, sets=sets)
    rec = build_recommender(cfg, quiet=json_out)
    req = RecRequest(user_id=user, text=text, k=k,
                     n_candidates=n_candidates or max(k, cfg.retriever.n_candidates),
                     filters=build_filters(genre, attr, deny, allow, include_seen),
                     explain=explain, explore=explore)
    resp = rec.recommend(req)
    if json_out:
        print_json(response_json(rec, resp, text=text))
        return
    who = f"user {user}" + (f" + {text!r}" if text else "") if user else repr(text)
    show_response(rec, resp, f"recommendations for {who} ({rec.dataset.name})")


def register(app: typer.Typer) -> None:
    app.command("recommend")(recommend)
