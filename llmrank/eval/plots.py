"""PNG plots a person can read at a glance: accuracy vs K for every ranker (with 95% CI
bands), accuracy vs diversity / novelty trade-offs, and the position-bias curve.
matplotlib is imported inside the functions (Agg backend: no display needed)."""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llmrank.eval.results import RankerResult

log = logging.getLogger(__name__)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def metric_vs_k(results: Sequence[RankerResult], path: Path, title: str) -> Path:
    """One panel per metric family (recall, ndcg, mrr); one line per ranker with a CI band."""
    plt = _pyplot()
    families = [m for m in ("recall", "ndcg", "mrr") if any(k.startswith(m) for k in results[0].summary)]
    fig, axes = plt.subplots(1, len(families), figsize=(4.2 * len(families), 3.6), squeeze=False)
    for ax, fam in zip(axes[0], families, strict=True):
        for r in results:
            keys = sorted((k for k in r.summary if k.startswith(fam + "@")),
                          key=lambda k: int(k.split("@")[1]))
            ks = [int(k.split("@")[1]) for k in keys]
            means = [r.summary[k].mean for k in keys]
            line = ax.plot(ks, means, marker="o", label=r.label)[0]
            ax.fill_between(ks, [r.summary[k].low for k in keys], [r.summary[k].high for k in keys],
                            color=line.get_color(), alpha=0.15)
        ax.set_xlabel("K")
        ax.set_ylabel(f"{fam.upper()}@K")
        ax.set_xticks(sorted({int(k.split("@")[1]) for k in results[0].summary}))
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(textwrap.fill(title, 110), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def tradeoff(results: Sequence[RankerResult], path: Path, title: str,
             accuracy: str = "ndcg@10") -> Path | None:
    """Accuracy (y) against each beyond-accuracy metric (x), one point per ranker, with CI
    error bars on both axes."""
    names = sorted({n for r in results for n in r.beyond})
    if not names or accuracy not in results[0].summary:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.6), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        for r in results:
            if name not in r.beyond:
                continue
            x, y = r.beyond[name], r.summary[accuracy]
            ax.errorbar(x.mean, y.mean, xerr=[[x.mean - x.low], [x.high - x.mean]],
                        yerr=[[y.mean - y.low], [y.high - y.mean]], fmt="o", capsize=3,
                        label=r.label)
            ax.annotate(r.label, (x.mean, y.mean), fontsize=7, xytext=(4, 4),
                        textcoords="offset points")
        ax.set_xlabel(name)
        ax.set_ylabel(accuracy)
        ax.grid(alpha=0.3)
    fig.suptitle(textwrap.fill(title, 110), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def position_bias_curve(results: Sequence[RankerResult], path: Path, title: str) -> Path | None:
    """Metric by the target's position in the candidate list shown to the ranker; a flat
    line means no position bias."""
    curves = [r for r in results if r.position_bias is not None]
    if not curves:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for r in curves:
        pb = r.position_bias
        assert pb is not None
        xs = [p + 1 for p in pb.positions]
        line = ax.plot(xs, pb.means, marker=".", label=r.label)[0]
        ax.fill_between(xs, [m - h for m, h in zip(pb.means, pb.half_widths, strict=True)],
                        [m + h for m, h in zip(pb.means, pb.half_widths, strict=True)],
                        color=line.get_color(), alpha=0.12)
    metric = curves[0].position_bias.metric if curves[0].position_bias else ""
    ax.set_xlabel("target position in the candidate list (1 = first); bands: 95% normal CI")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_ylabel(f"mean {metric}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(textwrap.fill(title, 80), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_plots(results: Sequence[RankerResult], out_dir: Path, title: str) -> list[Path]:
    """All plots that apply to these results; returns the files written."""
    if not results:
        return []
    made = [metric_vs_k(results, out_dir / "metric_vs_k.png", title)]
    for fn, name in ((tradeoff, "tradeoff.png"), (position_bias_curve, "position_bias.png")):
        p = fn(results, out_dir / name, title)
        if p is not None:
            made.append(p)
    log.info("plots: %s", ", ".join(str(p) for p in made))
    return made
