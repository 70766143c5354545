"""``llmrank eval``: run an evaluation config (llmrank.eval.run_eval) with flags on top.

Interrupt it at any time (Ctrl-C, kill) and run the same command again: finished shards of
users are reused and the numbers equal an uninterrupted run's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from llmrank.cli.common import (
    JsonOpt,
    VerboseOpt,
    console,
    plain,
    print_json,
    print_warning,
    progress_bar,
    setup_logging,
)


def _overrides(dataset: str | None, data_dir: str | None, kcore: int | None, protocol: str | None,
               stage: str | None, workers: int | None, out: str | None, seed: int | None,
               max_users: int | None, reference: str | None, retriever: str | None,
               plots: bool | None) -> dict[str, Any]:
    return {
        "data.dataset": dataset, "data.data_dir": data_dir, "data.kcore": kcore,
        "protocol.name": protocol, "protocol.stage": stage, "protocol.max_users": max_users,
        "protocol.retriever": retriever, "run.workers": workers, "run.out": out, "seed": seed,
        "run.reference": reference, "run.plots": plots,
    }


def _select_rankers(raw: dict[str, Any], names: str) -> list[dict[str, Any]]:
    """``--rankers a,b``: keep config entries with those labels/names, add bare ones."""
    from llmrank.errors import ConfigError

    existing = raw.get("rankers", [])
    if not isinstance(existing, list) or not all(isinstance(r, dict) for r in existing):
        # read as tables below; the same file without --rankers is this ConfigError too
        raise ConfigError(f"invalid eval config: rankers must be a list of tables ([[rankers]] "
                          f"with name = ...), got {existing!r:.80}")
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    if not wanted:  # zero rankers evaluated nothing and exited 0
        raise ConfigError(f"--rankers names no ranker: {names!r} (give NAME[,NAME...])")
    out = []
    for name in wanted:
        match = next((r for r in existing if r.get("label", r.get("name")) == name), None)
        out.append(match or {"name": name})
    return out


def _drop_lost_reference(raw: dict[str, Any], reference: str | None) -> None:
    """``--rankers`` without the config's reference ranker: no paired comparison (with a
    note), instead of a ConfigError after every ranker was evaluated. An explicit
    ``--reference`` is kept, and checked when the config loads."""
    run = raw.get("run")
    if not isinstance(run, dict):  # no section, or not a table: load_eval_config reports it
        return
    ref = run.get("reference")
    labels = [r.get("label", r.get("name")) for r in raw.get("rankers", [])]
    if reference is None and ref is not None and ref not in labels:
        print_warning(f"reference ranker {ref!r} is not among --rankers {', '.join(map(str, labels))}: "
                      "no paired comparison (give --reference LABEL for one)")
        raw["run"] = {k: v for k, v in run.items() if k != "reference"}


def eval_command(
    config: Path | None = typer.Option(None, "--config", "-c", help="Eval config (TOML/YAML)."),
    dataset: str | None = typer.Option(None, help="Dataset folder name under --data-dir, a path, or 'catalog' (the embedded demo)."),
    data_dir: str | None = typer.Option(None, help="Folder holding datasets (default $LLMRANK_DATA_DIR, else ../shared/datasets beside the checkout)."),
    kcore: int | None = typer.Option(None, min=0, help="k-core filter (LlamaRec used 5; 0 = none)."),
    protocol: str | None = typer.Option(None, help="full | candidates | retriever"),
    rankers: str | None = typer.Option(None, help="Comma-separated ranker names or config labels."),
    retriever: str | None = typer.Option(None, help="Retriever protocol: label of the proposer."),
    stage: str | None = typer.Option(None, help="valid (tuning) | test (reporting)"),
    workers: int | None = typer.Option(None, min=1, help="Worker processes (users are sharded)."),
    out: str | None = typer.Option(None, help="Output folder (default eval/out/<name>)."),
    seed: int | None = typer.Option(None, min=0, help="Seed (candidates, ties, bootstrap, rankers)."),
    max_users: int | None = typer.Option(None, min=1, help="Evaluate only the first N users."),
    reference: str | None = typer.Option(None, help="Ranker label for paired tests."),
    plots: bool | None = typer.Option(None, "--plots/--no-plots", help="Write PNG plots."),
    fresh: bool = typer.Option(False, "--fresh", help="Discard checkpoints instead of resuming."),
    json_out: bool = JsonOpt,
    verbose: bool = VerboseOpt,
) -> None:
    """Evaluate rankers under a protocol; writes run files, metrics.json, results.md, plots."""
    from llmrank.config_files import read_config_file
    from llmrank.eval.api import header_lines, run_eval
    from llmrank.eval.config import load_eval_config
    from llmrank.eval.report import fmt_ci, headline_metrics

    setup_logging(verbose)
    raw: dict[str, Any] = read_config_file(config) if config else {}
    if rankers is not None:
        raw["rankers"] = _select_rankers(raw, rankers)
        _drop_lost_reference(raw, reference)
    cfg = load_eval_config(raw, _overrides(dataset, data_dir, kcore, protocol, stage, workers,
                                           out, seed, max_users, reference, retriever, plots))
    with progress_bar(enabled=not json_out) as bar:
        def factory(label: str, total: int):  # type: ignore[no-untyped-def]
            task = bar.add_task(plain(f"{label}: users"), total=total)
            return lambda n: bar.advance(task, n)

        rep = run_eval(cfg, progress=factory, fresh=fresh)
    if json_out:
        print_json({"out_dir": str(rep.out_dir), "header": header_lines(rep),
                    "results": {r.label: r.to_dict() for r in rep.results}})
        return
    from rich.table import Table

    head = header_lines(rep)
    for k, v in head.items():
        console.print(f"[bold]{k}[/]: {plain(v)}", highlight=False)
    ks = sorted({int(k.split("@")[1]) for k in rep.results[0].summary})
    cols = headline_metrics(cfg.protocol.name, ks)
    table = Table(title="mean [95% bootstrap CI]")
    table.add_column("ranker")
    for c in cols:
        table.add_column(c, justify="right")
    for r in rep.results:
        table.add_row(plain(r.label), *[fmt_ci(r.summary.get(c)) for c in cols])
    console.print(table)
    plots_note = ", plots" if cfg.run.plots else ""
    console.print(f"outputs: {plain(rep.out_dir)}/ (results.md, metrics.json, runs/{plots_note})")


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)


def main() -> None:
    """``python -m llmrank.cli.eval``: the same command without mounting the other groups."""
    from llmrank.cli.common import run_guarded

    app = typer.Typer(pretty_exceptions_enable=False, add_completion=False)
    app.command()(eval_command)
    run_guarded(app)


if __name__ == "__main__":
    main()
