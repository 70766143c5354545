"""``llmrank simulate``: replay a dataset in time order and compare exploration policies
(``llmrank.explore.simulate.simulate`` + ``llmrank.explore.report.write_report``)."""

from __future__ import annotations

from pathlib import Path

import typer

from llmrank.cli.common import JsonOpt, VerboseOpt, console, print_json, progress_bar, setup_logging


def simulate_cmd(
    config: Path = typer.Option(None, "--config", "-c", help="Simulation config (TOML/YAML)."),
    dataset: str = typer.Option(None, "--dataset", "-d", help="Dataset name or path (overrides the config's data section; default ml-100k)."),
    data_dir: str = typer.Option(None, "--data-dir", help="Where named datasets live (default $LLMRANK_DATA_DIR, else ./data)."),
    policies: str = typer.Option(None, "--policies", "-p",
                                 help="Comma-separated policy labels from the config (or registry names)."),
    steps: int = typer.Option(None, "--steps", min=1, help="Served requests (sampled over the replay)."),
    out: Path = typer.Option(None, "--out", "-o", help="Report folder (default: eval/out/simulate/<dataset>)."),
    seed: int = typer.Option(None, "--seed", min=0, help="Override the config's seed."),
    no_plots: bool = typer.Option(False, "--no-plots", help="Skip the PNG plots."),
    json_out: bool = JsonOpt,
    verbose: bool = VerboseOpt,
) -> None:
    """Replay a dataset, show slates from each policy, and write metrics.json, report.md and plots."""
    from llmrank.explore.report import markdown, summarize, write_report
    from llmrank.explore.simulate import load_simulate_config, simulate

    setup_logging(verbose)
    cfg = load_simulate_config(config)
    if dataset:
        cfg.data.dataset = dataset
    if data_dir:
        cfg.data.data_dir = data_dir
    if seed is not None:
        cfg.seed = seed
        cfg.replay.pop("seed", None)  # a [replay] seed would beat the top-level one
    names = [p.strip() for p in policies.split(",") if p.strip()] if policies is not None else None
    if names == []:  # an empty list replayed the config's policies, as no flag does
        from llmrank.errors import ConfigError

        raise ConfigError(f"--policies names no policy: {policies!r} (give NAME[,NAME...])")
    with progress_bar(not json_out) as bar:
        task = bar.add_task("replay", total=None)

        def tick(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        result = simulate(cfg, policies=names, steps=steps, progress=tick)
    summary = summarize(result)
    folder = out or Path(cfg.out or Path("eval/out/simulate") / Path(cfg.data.dataset).name)
    files = write_report(summary, folder, plots=not no_plots, result=result)
    if json_out:
        print_json({"files": files, **{k: v for k, v in summary.items() if k != "curves"}})
        return
    console.print(markdown(summary), markup=False, highlight=False)
    console.print(f"report: {folder}", markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate_cmd)
