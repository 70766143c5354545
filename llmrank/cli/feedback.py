"""``llmrank feedback import|export|stats|pairs|ope``: the feedback store from the shell.

Each command maps to a library function: ``import_jsonl``, ``export_jsonl``,
``FeedbackStore.counts``, ``preference_pairs`` (DPO pairs for ``llmrank finetune --dpo``) and
``llmrank.explore.ope.evaluate`` over the store's logged impressions."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO, Any

import typer
from rich.markup import escape
from rich.table import Table

from llmrank.cli.common import (
    JsonOpt,
    VerboseOpt,
    console,
    exit_if_nothing_succeeded,
    file_in_the_way,
    print_json,
    setup_logging,
)

app = typer.Typer(help="Feedback store: import/export JSON lines, stats, DPO pairs, off-policy estimates.",
                  no_args_is_help=True)

StoreOpt = typer.Option(None, "--store", "-s", help="SQLite file (default: the feedback path in the "
                        "config, else $LLMRANK_HOME/feedback.sqlite).")
ConfigOpt = typer.Option(None, "--config", "-c", help="Deployment config (TOML/YAML) with a feedback section.")
SettleOpt = typer.Option(3600.0, "--settle", min=0.0, help="Leave out impressions younger than this many "
                         "seconds: their clicks may not have arrived (the policy's settle_seconds; 0: all).")


def _settled_until(settle: float) -> float | None:
    import time

    return time.time() - settle if settle > 0 else None

EXPORT_WHAT = ("all", "impressions", "events")
NEGATIVES = ("shown", "above", "skipped")


def _check_choice(flag: str, value: str, choices: tuple[str, ...]) -> None:
    """A flag value outside ``choices`` is a usage error (exit 2), before any work; the
    library's FeedbackError for it exited 1, as a failure."""
    from llmrank.errors import ConfigError

    if value not in choices:
        raise ConfigError(f"{flag} must be {', '.join(choices[:-1])} or {choices[-1]}, got {value!r}")


@contextmanager
def _atomic_text(path: Path) -> Iterator[IO[str]]:
    """Write ``path`` through a temporary file in its folder, renamed over it when complete:
    Ctrl-C or an error midway leaves the old file (or none), never half of one. The folder
    is made when missing."""
    from llmrank.atomic import atomic_write
    from llmrank.errors import DataError

    if path.is_dir():  # else it failed at the rename, naming the hidden temporary file
        raise DataError(f"cannot write --out {path}: it is a folder; give a file path")
    stack = ExitStack()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = stack.enter_context(atomic_write(path))
    except OSError as exc:
        blocker = file_in_the_way(str(path.parent))
        why = f"{blocker} is a file, not a folder" if blocker else exc.strerror or exc
        raise DataError(f"cannot write --out {path}: {why}") from exc
    try:
        with stack:
            yield fh
    except OSError as exc:  # writing or the final rename: name the path given, not the temporary file
        raise DataError(f"cannot write --out {path}: {exc.strerror or exc}") from exc


def _store(store: Path | None, config: Path | None, *, read: bool = True) -> Any:
    """The store to use. Readers (``read``: stats, export, pairs, ope) need an existing
    SQLite file, so a mistyped --store is an error (exit 3), not an empty new store."""
    from llmrank.config import load_config
    from llmrank.feedback import open_store

    cfg = load_config(config)
    options = {"create": False} if read and cfg.feedback.backend == "sqlite" else {}
    return open_store(cfg.feedback, path=store, **options)


@app.command("import")
def import_cmd(
    file: Path = typer.Argument(..., help="JSON-lines file of impressions and events."),
    store: Path = StoreOpt, config: Path = ConfigOpt,
    on_error: str = typer.Option("skip", "--on-error", help="skip (report and count) or raise."),
    json_out: bool = JsonOpt, verbose: bool = VerboseOpt,
) -> None:
    """Import records; a malformed line is reported with its line number and skipped or raised."""
    from llmrank.data.lines import LoadReport
    from llmrank.errors import ConfigError
    from llmrank.feedback.jsonl import import_jsonl

    setup_logging(verbose)
    if on_error not in ("skip", "raise"):
        raise ConfigError("--on-error must be skip or raise")
    report = LoadReport(log_problems=False)  # printed below (or in the JSON), once
    fb = _store(store, config, read=False)
    counts = import_jsonl(fb, file, on_error=on_error, report=report)  # type: ignore[arg-type]
    result = {**counts, "problems": report.problems, "store": getattr(fb, "path", None)}
    if json_out:
        print_json(result)
    else:
        console.print(f"imported {counts['written']} new records ({counts['impressions']} impressions, "
                      f"{counts['events']} events read, {counts['skipped']} lines skipped) into "
                      f"{escape(str(result['store']))}")
        for p in report.problems:
            console.print(f"[yellow]skipped[/] {escape(p)}")
        if counts["skipped"] > len(report.problems):
            console.print(f"[yellow]skipped[/] {counts['skipped'] - len(report.problems)} more lines")
    exit_if_nothing_succeeded(counts["impressions"] + counts["events"], counts["skipped"], "lines")


@app.command("export")
def export_cmd(
    out: Path = typer.Option(None, "--out", "-o", help="Output file (default: stdout; with --json, "
                             "one JSON document instead of JSON lines)."),
    what: str = typer.Option("all", "--what", help="all, impressions or events."),
    since: float = typer.Option(None, "--since", help="Unix time lower bound."),
    until: float = typer.Option(None, "--until", help="Unix time upper bound (exclusive)."),
    store: Path = StoreOpt, config: Path = ConfigOpt,
    json_out: bool = JsonOpt, verbose: bool = VerboseOpt,
) -> None:
    """Export the store as JSON lines (the format `import` reads).

    With --json and no --out: one JSON document, {"impressions": n, "events": n, "records": [...]}."""
    from llmrank.feedback.jsonl import export_jsonl

    setup_logging(verbose)
    _check_choice("--what", what, EXPORT_WHAT)
    fb = _store(store, config)
    if out is None and json_out:
        buf = io.StringIO()
        counts = export_jsonl(fb, buf, what=what, since=since, until=until)
        print_json({**counts, "records": [json.loads(line) for line in buf.getvalue().splitlines()]})
        return
    if out is None:
        export_jsonl(fb, sys.stdout, what=what, since=since, until=until)
        return
    with _atomic_text(out) as fh:
        counts = export_jsonl(fb, fh, what=what, since=since, until=until)
    if json_out:
        print_json({**counts, "file": str(out)})
    else:
        console.print(f"exported {counts['impressions']} impressions and {counts['events']} events to "
                      f"{escape(str(out))}")


@app.command("stats")
def stats_cmd(store: Path = StoreOpt, config: Path = ConfigOpt, json_out: bool = JsonOpt) -> None:
    """Counts of impressions and events by kind."""
    fb = _store(store, config)
    counts = fb.counts()
    if json_out:
        print_json({**counts, "store": getattr(fb, "path", None)})
        return
    table = Table("record", "count")
    for k, v in counts.items():
        table.add_row(k, str(v))
    console.print(table)


@app.command("pairs")
def pairs_cmd(
    out: Path = typer.Option(..., "--out", "-o", help="JSON-lines file of preference pairs."),
    negatives: str = typer.Option("shown", "--negatives", help="Which non-clicked items are rejected: "
                                  "shown (every one; assumes the whole slate was seen), above (only those "
                                  "above the lowest click, plus explicit skips) or skipped (explicit skips "
                                  "and low ratings only)."),
    max_history: int = typer.Option(20, "--max-history", min=0,
                                    help="Most recent history items kept with each pair (0: none)."),
    settle: float = SettleOpt,
    store: Path = StoreOpt, config: Path = ConfigOpt,
    json_out: bool = JsonOpt, verbose: bool = VerboseOpt,
) -> None:
    """Write (chosen, rejected) pairs from the same impression for `llmrank finetune --dpo`."""
    from llmrank.feedback.pairs import preference_pairs, write_pairs_jsonl

    setup_logging(verbose)
    _check_choice("--negatives", negatives, NEGATIVES)
    pairs = preference_pairs(_store(store, config), negatives=negatives,  # type: ignore[arg-type]
                             max_history=max_history, until=_settled_until(settle))
    with _atomic_text(out) as fh:
        n = write_pairs_jsonl(pairs, fh)
    if json_out:
        print_json({"pairs": n, "file": str(out)})
    else:
        console.print(f"wrote {n} preference pairs to {escape(str(out))}")


def _item_features(config: Path) -> Any:
    """The item features the server built from this deployment config (genres, popularity,
    and embeddings when the retriever has an index): a target policy that uses them (the
    linear bandit, diversity, calibration, caps) is evaluated as it would serve."""
    from llmrank.config import load_config
    from llmrank.data.resolve import load_dataset
    from llmrank.explore.features import features_for
    from llmrank.recommender import _build_retriever

    cfg = load_config(config)
    dataset = load_dataset(cfg.data)
    return features_for(dataset, _build_retriever(dataset, cfg))


@app.command("ope")
def ope_cmd(
    policy: str = typer.Option(..., "--policy", help="Target policy name (llmrank.registry.policies)."),
    options: str = typer.Option("{}", "--options", help="Target policy options as JSON."),
    logged: str = typer.Option(None, "--logged-policy", help="Only impressions of this logging policy."),
    n_boot: int = typer.Option(1000, "--n-boot", min=10, help="Bootstrap resamples for the 95% CIs."),
    features: bool = typer.Option(True, "--features/--no-features",
                                  help="With --config: give the target policy the deployment's item "
                                       "features (loads the dataset and the retriever's index)."),
    settle: float = SettleOpt,
    store: Path = StoreOpt, config: Path = ConfigOpt,
    json_out: bool = JsonOpt, verbose: bool = VerboseOpt,
) -> None:
    """Estimate a policy's clicks per impression from the logs of another (IPS, SNIPS, DR).

    Each round is evaluated in its logged context (segment, history). Item features come from --config's deployment (none without --config)."""
    from llmrank.errors import ConfigError
    from llmrank.explore import make_policy
    from llmrank.explore.ope import evaluate, from_store, memoize, policy_target
    from llmrank.explore.reward_model import cross_fit

    setup_logging(verbose)
    try:
        opts = json.loads(options)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--options is not JSON: {exc}") from exc
    if not isinstance(opts, dict):
        raise ConfigError(f"--options must be a JSON object ({{\"name\": value, ...}}), got {options!r}")
    fb = _store(store, config)
    rounds, skipped = from_store(fb, policy=logged, until=_settled_until(settle))
    if not rounds:
        raise _no_rounds(fb, logged, skipped)
    k = max(len(r.shown) for r in rounds)
    feats = _item_features(config) if features and config is not None else None
    target = memoize(policy_target(make_policy(policy, opts, features=feats)))
    est = evaluate(rounds, target, reward_model=memoize(cross_fit(rounds, k)), n_boot=n_boot)
    rows: dict[str, dict[str, Any]] = {
        name: {"value": e.value, "ci": [e.ci_low, e.ci_high], "ess": e.ess} for name, e in est.items()}
    if json_out:
        print_json({"policy": policy, "options": opts, "rounds": len(rounds), "skipped": skipped,
                    "features": feats is not None, "estimates": rows})
        return
    table = Table("estimator", "clicks / impression", "95% CI", "ESS")
    for name, r in rows.items():
        table.add_row(escape(name), f"{r['value']:.4f}", f"[{r['ci'][0]:.4f}, {r['ci'][1]:.4f}]", f"{r['ess']:.0f}")
    console.print(f"{escape(policy)} from {len(rounds)} logged impressions ({skipped} without candidates skipped)"
                  + ("" if feats is not None else "; no item features (give --config)"))
    console.print(table)


def _no_rounds(fb: Any, logged: str | None, skipped: int) -> Exception:
    """Why there is nothing to evaluate: an empty store, no impression of --logged-policy
    (naming the policies that are logged), impressions without their candidate lists, or only
    impressions younger than --settle."""
    from llmrank.errors import DataError

    where = getattr(fb, "path", None) or "the feedback store"
    if skipped:
        return DataError(f"none of the {skipped} impression{'s' if skipped != 1 else ''} in {where} "
                         "has its candidate list, which off-policy estimates re-score; log with a "
                         "policy that records candidates (the server does)")
    if logged is not None:
        policies = sorted({imp.policy for imp in fb.impressions()})
        if policies:
            return DataError(f"no impressions logged by policy {logged!r} in {where}; logged "
                             f"policies: {', '.join(policies)}")
    if logged is None and next(iter(fb.impressions()), None) is not None:
        return DataError(f"every impression in {where} is younger than --settle seconds (its clicks "
                         "may not have arrived); wait, or pass a smaller --settle")
    return DataError(f"no impressions in {where}: the store is empty; log some (llmrank serve with "
                     "a [feedback] section) or `llmrank feedback import` a JSON-lines file")
