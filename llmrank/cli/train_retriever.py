"""``llmrank train-retriever``: train the sequential model (SASRec or LRURec) on a dataset's
histories, early-stopping on each user's last item, fuse it with text embeddings (unless
``--retriever sequential``) and write an index folder that ``llmrank retrieve --index`` and
``load_retriever`` use. Maps to ``SequentialRetriever.build`` / ``FusedRetriever.build`` +
``save_retriever``."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from llmrank.cli.common import (
    JsonOpt,
    VerboseOpt,
    console,
    plain,
    print_json,
    progress_bar,
    setup_logging,
)
from llmrank.cli.index import ConfigOpt, DataDirOpt, DatasetOpt, load_data, make_config

if TYPE_CHECKING:
    from llmrank.config import Config
    from llmrank.data.dataset import Dataset
    from llmrank.retrieve.sequential.config import SequentialConfig

KINDS = ("fused", "sequential")
MODELS = ("lru", "sasrec")


def _epoch_table(history: list[Any]) -> Table:
    table = Table(title="validation (each user's last training item, full ranking)")
    members = any(h.member for h in history)  # an ensemble: say which model each row is
    for col in (("model",) if members else ()) + (
            "epoch", "loss", "NDCG@10", "Recall@10", "MRR@10", "Recall@20", "s", "best"):
        table.add_column(col, justify="right")
    for h in history:
        m = h.metrics
        table.add_row(*((plain(h.member),) if members else ()), str(h.epoch), f"{h.loss:.4f}",
                      *(f"{m[k]:.4f}" if k in m else "-" for k in
                        ("ndcg@10", "recall@10", "mrr@10", "recall@20")),
                      f"{h.seconds:.1f}", "*" if h.best else "")
    return table


def train_retriever(
    dataset: str | None = DatasetOpt,
    data_dir: str | None = DataDirOpt,
    kcore: int | None = typer.Option(None, "--kcore", help="k-core filter first (LlamaRec: 5)."),
    retriever: str | None = typer.Option(None, "--retriever", help="fused (behaviour + text) or "
                                         "sequential (default: the config's retriever.kind when "
                                         "it is one of them, else fused)."),
    model: str | None = typer.Option(None, "--model", "-m", help="lru (default) or sasrec."),
    epochs: int | None = typer.Option(None, "--epochs", min=0, help="Maximum epochs."),
    patience: int | None = typer.Option(None, "--patience", min=1,
                                        help="Stop after this many epochs without a gain."),
    hidden: int | None = typer.Option(None, "--hidden", min=2, help="Embedding size."),
    max_len: int | None = typer.Option(None, "--max-len", min=2, help="History window."),
    batch_size: int | None = typer.Option(None, "--batch-size", min=1, help="History windows per training batch."),
    lr: float | None = typer.Option(None, "--lr", min=0.0, help="Learning rate."),
    dropout: float | None = typer.Option(None, "--dropout", min=0.0, max=1.0, help="Dropout rate."),
    seed: int | None = typer.Option(None, "--seed", help="Seed (default: the config's, 0)."),
    refit: bool | None = typer.Option(None, "--refit/--no-refit", help="After early stopping, "
                                      "retrain from scratch on every item, each user's held-out "
                                      "last one included, for the early-stopped number of epochs "
                                      "(no validation left; fused: the blend is tuned before)."),
    ensemble: list[str] | None = typer.Option(
        None, "--ensemble", help="Also train this model (lru or sasrec, repeatable; a repeated "
        "architecture is a seed twin) and average the scores in one index; 'none' for a single "
        "model. Default for fused: two seeds each of LRURec and SASRec (best on validation); "
        "for sequential: none."),
    device: str | None = typer.Option(None, "--device", help="auto (GPU if any), cpu, cuda."),
    threads: int | None = typer.Option(None, "--threads", min=1, help="CPU threads (default 1)."),
    embedder: str | None = typer.Option(None, "--embedder", help="Embedder backend (fused)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Index folder to write "
                                    "(default $LLMRANK_HOME/indexes/<dataset>/<retriever>)."),
    config: Path | None = ConfigOpt,
    json_out: bool = JsonOpt,
    verbose: bool = VerboseOpt,
) -> None:
    """Train a behavioural (and fused) retriever with per-epoch validation metrics."""
    from llmrank.retrieve import default_index_dir, save_retriever
    from llmrank.retrieve.sequential.config import member_settings
    from llmrank.retrieve.sequential.retriever import sequential_config

    setup_logging(verbose)
    members = _checked_members(retriever or "fused", model, ensemble)  # a typo fails before the config loads
    cfg = make_config(config, {"data.dataset": dataset, "data.data_dir": data_dir,
                               "data.kcore": kcore, "retriever.kind": retriever,
                               "embedder.backend": embedder, "seed": seed})
    # the flag, else the config's kind (the flag's default used to override it), else fused
    retriever = retriever or (cfg.retriever.kind if cfg.retriever.kind in KINDS else "fused")
    cfg = cfg.model_copy(update={"retriever": cfg.retriever.model_copy(update={"kind": retriever})})
    scfg = sequential_config(cfg, model=model, epochs=epochs, patience=patience, hidden=hidden,
                             max_len=max_len, batch_size=batch_size, lr=lr, dropout=dropout,
                             device=device, threads=threads, refit=refit,
                             seed=seed)  # over a seed in the config's sequential options
    if ensemble:
        scfg = replace(scfg, ensemble=member_settings(members, scfg.model, scfg.seed))
    scfg = _with_default_ensemble(scfg, cfg, retriever, ensemble)
    t0 = time.perf_counter()
    ds = load_data(cfg.data)
    built, history = _build(ds, cfg, scfg, retriever, json_out)
    t1 = time.perf_counter()
    folder = out or default_index_dir(ds.name, retriever)
    manifest = save_retriever(built, folder)
    meta = built.model.meta
    summary = {
        "path": str(folder), "retriever": retriever, "dataset": ds.name,
        "model": scfg.to_dict(), "best_epoch": meta.get("best_epoch"),
        "best_valid_ndcg10": meta.get("best_valid_ndcg10"), "epochs_run": meta.get("epochs_run"),
        "fusion": getattr(built, "report", None),
        "epochs": [{"epoch": h.epoch, "loss": h.loss, "seconds": h.seconds, **h.metrics,
                    **({"member": h.member} if h.member else {})} for h in history],
        "seconds": round(t1 - t0, 1), "manifest": manifest.to_dict(),
    }
    if json_out:
        print_json(summary)
        return
    console.print(_epoch_table(history))
    console.print(_index_table(folder, retriever, scfg, ds, built, manifest, t1 - t0))


def _checked_members(retriever: str, model: str | None, ensemble: list[str] | None) -> list[str]:
    """The --ensemble members ('none' dropped), once --retriever, --model and --ensemble
    are known names: a typo fails here, before any data is loaded."""
    if retriever not in KINDS:
        raise typer.BadParameter(f"--retriever must be one of {', '.join(KINDS)}")
    members = [m for m in (ensemble or []) if m != "none"]
    for name in [model, *members]:
        if name is not None and name not in MODELS:
            raise typer.BadParameter(f"--model/--ensemble must be one of {', '.join(MODELS)}")
    return members


def _with_default_ensemble(scfg: SequentialConfig, cfg: Config, retriever: str,
                           ensemble: list[str] | None) -> SequentialConfig:
    """A fused retriever trains the default members (two seeds each of LRURec and SASRec,
    best on validation) unless --ensemble or the config's sequential options say otherwise."""
    from llmrank.retrieve.sequential.config import default_fused_ensemble

    if (ensemble is None and retriever == "fused"
            and "ensemble" not in (cfg.retriever.options.get("sequential") or {})):
        return replace(scfg, ensemble=default_fused_ensemble(scfg.model, scfg.seed))
    return scfg


def _build(ds: Dataset, cfg: Config, scfg: SequentialConfig, retriever: str,
           json_out: bool) -> tuple[Any, list[Any]]:
    """Train and build the retriever under progress bars; returns it with the per-epoch
    reports (also printed as they come unless --json)."""
    history: list[Any] = []
    with progress_bar(not json_out) as bar:
        tasks: dict[str, Any] = {}
        epoch_task = bar.add_task(plain(f"training {scfg.model}"), total=scfg.epochs)

        def progress(stage: str, done: int, total: int) -> None:
            if stage.startswith("training"):
                stage = "batches"
            if stage not in tasks:
                tasks[stage] = bar.add_task(plain(stage), total=total)
            bar.update(tasks[stage], completed=done, total=total)

        def on_epoch(report: Any) -> None:
            history.append(report)
            bar.update(epoch_task, completed=report.epoch)
            if report.metrics and not json_out:
                bar.console.print(_epoch_line(report))

        cls: Any
        if retriever == "fused":
            from llmrank.retrieve.fused import FusedRetriever as cls
        else:
            from llmrank.retrieve.sequential.retriever import SequentialRetriever as cls
        built = cls.build(ds, cfg, progress=progress, seq_config=scfg, on_epoch=on_epoch)
    return built, history


def _epoch_line(report: Any) -> str:
    """One epoch's loss and validation metrics, as printed while training."""
    m = report.metrics
    return (f"epoch {report.epoch:3d}  loss {report.loss:.4f}  NDCG@10 {m['ndcg@10']:.4f}"
            f"  Recall@10 {m['recall@10']:.4f}  {report.seconds:.1f}s"
            + ("  [green]best[/]" if report.best else ""))


def _index_table(folder: Path, retriever: str, scfg: SequentialConfig, ds: Dataset, built: Any,
                 manifest: Any, seconds: float) -> Table:
    """What was written: the models, the data, the best epoch, the index, the fusion."""
    meta = built.model.meta
    table = Table(title=plain(f"index folder {folder}"), show_header=False)
    names = "+".join([scfg.model, *(str(m.get("model", scfg.model)) for m in scfg.ensemble)])
    rows = [("retriever", retriever), ("model", f"{names} (hidden {scfg.hidden}, "
                                                f"{scfg.layers} layers, max_len {scfg.max_len})"),
            ("dataset", f"{ds.name} ({ds.n_users} users, {ds.n_items} items)"),
            ("best epoch", f"{meta.get('best_epoch')} ({_valid_ndcg(meta.get('best_valid_ndcg10'))})"),
            ("index", f"{manifest.index.get('kind')} ({manifest.n_items} vectors, {manifest.dim}-d)"),
            ("time", f"{seconds:.1f}s")]
    if retriever == "fused":
        rep = built.report
        rows.append(("fusion", f"kappa {rep['kappa']}, ridge {rep['ridge']}, "
                               f"{rep['cold_items']} items without training interactions"))
    for key, value in rows:
        table.add_row(key, plain(value))
    return table


def register(app: typer.Typer) -> None:
    app.command("train-retriever")(train_retriever)


def _valid_ndcg(value: object) -> str:
    """The best validation NDCG@10, or why there is none (0 epochs, no validation users)."""
    return f"valid NDCG@10 {value:.4f}" if isinstance(value, (int, float)) else "not validated"
