"""`llmrank finetune`: LoRA SFT (default), DPO (--dpo), or a cross-domain start from an
existing adapter (--domain NEW --from-adapter BASE, compared with training from scratch).
Maps 1:1 to ``llmrank.finetune.finetune``; the recipe file is the config and flags override
single fields."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from llmrank.cli.common import (
    JsonOpt,
    VerboseOpt,
    console,
    parse_key_values,
    plain,
    print_json,
    progress_bar,
    setup_logging,
)

if TYPE_CHECKING:
    from llmrank.finetune.config import Recipe


def overrides_from_flags(*, dataset: str | None, steps: int | None, lr: float | None,
                         dpo: bool, from_adapter: str | None, domain: str | None,
                         out: str | None, name: str | None, base_model: str | None,
                         users: int | None, threads: int | None, seed: int | None,
                         feedback: str | None) -> dict[str, Any]:
    """Flags -> dotted recipe keys (None = keep the recipe's value). ``--feedback`` implies
    DPO (its pairs are only used there: ignoring it silently trained SFT); ``--dataset`` and
    ``--domain`` naming two datasets is an error (one of them would be silently ignored)."""
    from llmrank.errors import ConfigError

    if dataset and domain and dataset != domain:
        raise ConfigError(f"--dataset {dataset!r} and --domain {domain!r} both name the training "
                          "dataset: give --domain alone for a cross-domain run")
    o: dict[str, Any] = {
        "data.dataset": domain or dataset, "train.max_steps": steps,
        "train.learning_rate": lr, "from_adapter": from_adapter, "out": out,
        "adapter_name": name, "base_model": base_model, "examples.max_users": users,
        "train.threads": threads, "seed": seed,
    }
    if dpo or feedback:
        o["mode"] = "dpo"
    if feedback:
        o["dpo.source"], o["dpo.feedback_db"] = "feedback", feedback
    return o


def read_recipe(path: Path, overrides: dict[str, Any], users: int | None) -> Recipe:
    """The recipe with the flags on top. ``--users N`` caps the validation users at N too:
    it capped only the training users, and validating 100 users kept a quick run slow."""
    from llmrank.finetune.config import load_recipe

    rec = load_recipe(path, overrides)
    if users is not None and users < rec.validation.users:
        rec = load_recipe(path, {**overrides, "validation.users": users})
    return rec


def _summary_table(report: Any) -> None:
    from rich.table import Table

    s = report.summary()
    table = Table(title=plain(f"llmrank finetune: {s['recipe']} ({s['mode']})"))
    table.add_column("field")
    table.add_column("value")
    best = s.get("best") or {}
    rows = [
        ("dataset", s["dataset"]), ("adapter", s["adapter"]), ("registry name", s["name"] or "-"),
        ("steps", s["steps"]), ("training time", f"{s['seconds']:.0f} s"),
        ("seconds / step", f"{s['seconds_per_step']:.2f}"),
        ("peak memory", f"{s['peak_memory_mb']} MB"), ("device", s["device"]),
        (f"best validation {best.get('metric', '')}",
         f"{best['value']:.4f} at step {best['step']}" if best else "-"),
    ]
    if s.get("merged"):
        rows.append(("merged model", s["merged"]))
    for k, v in rows:
        table.add_row(plain(k), plain(v))
    console.print(table)
    t = s.get("transfer")
    if t:
        comp = Table(title=f"cross-domain: validation {t['metric']} with the same budget")
        for col in ("start", t["metric"]):
            comp.add_column(col)
        comp.add_row("from adapter", f"{t['from_adapter']:.4f}")
        comp.add_row("from scratch", f"{t['from_scratch']:.4f}")
        p = t.get("paired") or {}
        gain = f"{t['gain']:+.4f}" + (f" (p={p['p_value']:.3g})" if p else "")
        comp.add_row("gain", gain)
        console.print(comp)


def register(app: typer.Typer) -> None:
    @app.command("finetune")
    def finetune_cmd(
        recipe: Path | None = typer.Option(
            None, "--recipe", "-r", help="Recipe TOML: a path, or the name of a shipped recipe "
            "(dpo.toml, ...); default the shipped sft_ml_small.toml."),
        dataset: str | None = typer.Option(None, help="Dataset name or path (overrides data.dataset)."),
        steps: int | None = typer.Option(None, min=1, help="Optimizer steps (train.max_steps)."),
        lr: float | None = typer.Option(None, "--lr", help="Learning rate (> 0)."),
        dpo: bool = typer.Option(False, "--dpo", help="Preference tuning (DPO) instead of SFT."),
        feedback: str | None = typer.Option(None, help="DPO pairs from this feedback SQLite file (implies --dpo)."),
        from_adapter: str | None = typer.Option(None, "--from-adapter", help="Start from this adapter (name or path)."),
        domain: str | None = typer.Option(None, help="New domain dataset (instead of --dataset); with --from-adapter, compare against training from scratch."),
        out: str | None = typer.Option(None, help="Run folder (checkpoints, logs, adapter)."),
        name: str | None = typer.Option(None, "--name", help="Publish the adapter under this registry name."),
        base_model: str | None = typer.Option(None, "--base-model", help="Base model (default: SmolLM2-135M-Instruct)."),
        users: int | None = typer.Option(None, min=1, help="Use only the first N users, and at most N "
                                         "validation users (quick runs)."),
        threads: int | None = typer.Option(None, min=1, help="Torch CPU threads."),
        seed: int | None = typer.Option(None, min=0, help="Seed."),
        resume: bool = typer.Option(False, "--resume", help="Continue from the last checkpoint in the run folder."),
        merge: bool = typer.Option(False, "--merge", help="Also save the adapter merged into the base model."),
        sets: list[str] | None = typer.Option(
            None, "--set", help="Recipe field KEY=VALUE (repeatable; wins over the flags), "
            "e.g. examples.hard_negatives=0 (no retriever to build)."),
        json_out: bool = JsonOpt,
        verbose: bool = VerboseOpt,
    ) -> None:
        """Fine-tune the LLM reranker with LoRA (SFT or DPO) and save the adapter with its manifest."""
        from llmrank.finetune.api import finetune
        from llmrank.finetune.config import resolve_recipe

        setup_logging(verbose)
        if lr is not None and not lr > 0:  # 0 trains nothing; below 0 climbs the loss
            raise typer.BadParameter(f"must be > 0, got {lr}", param_hint="--lr")
        overrides = overrides_from_flags(
            dataset=dataset, steps=steps, lr=lr, dpo=dpo, from_adapter=from_adapter,
            domain=domain, out=out, name=name, base_model=base_model, users=users,
            threads=threads, seed=seed, feedback=feedback)
        rec = read_recipe(resolve_recipe(recipe), {**overrides, **parse_key_values(sets)}, users)
        # a comparison is SFT only: the recipe's mode decides (a DPO recipe without --dpo
        # asked for one, which the API refuses)
        compare = bool(domain and from_adapter and rec.mode == "sft")
        with progress_bar(enabled=not json_out) as bar:
            tasks: dict[str, Any] = {}

            def on_prepare(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = bar.add_task(plain(stage), total=total)
                bar.update(tasks[stage], completed=done, total=total)
                if stage.startswith("rendering") and done >= total:
                    bar.stop()  # training shows its own bar (transformers' tqdm)

            report = finetune(rec, resume=resume, compare_scratch=compare, merge=merge,
                              progress=not json_out, on_prepare=on_prepare)
        if json_out:
            print_json(report.summary())
        else:
            _summary_table(report)
