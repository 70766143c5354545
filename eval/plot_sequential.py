"""Plots for RESULTS.md section 4 (behavioural / fused retriever), drawn from the JSON the
benchmarks already wrote: nothing is trained or re-evaluated here.

- ``sequential_accuracy.png``: test NDCG@10 and Recall@10 with 95% bootstrap CIs for the
  text, SASRec, LRURec, LRURec + SASRec, the two-seed ensemble and fused retrievers
  (``bench_sequential.py`` results.json files, merged), against the LlamaRec paper's lines.
- ``sequential_cold_<dataset>.png`` per ``bench_sequential_cold.py`` output: left, test
  Recall@100 on cold targets against warm targets (95% CIs on both axes) for each retriever
  and cold placement; right, the validation grid of cold placements (pseudo-cold
  Recall@100 against all-user NDCG@10) with the chosen points marked.

    python eval/plot_sequential.py \
        --main eval/out/sequential_ml-latest-small_5core_fused_ensemble_cold \
        --main eval/out/sequential_ml-latest-small_5core_seed_ensemble \
        --cold eval/out/sequential_cold_ml-latest-small_5core \
        --cold eval/out/sequential_cold_ml-100k_5core --out eval/plots
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

# LlamaRec paper, ML-100k (= ml-latest-small, 5-core), full ranking, test: (NDCG@10, Recall@10)
PUBLISHED = {"SASRec": (0.0522, 0.0993), "LRURec": (0.0705, 0.1426), "LlamaRec": (0.0759, 0.1524)}
# results.json key -> label, in plot order
MAIN_RETRIEVERS = {"text": "text", "sasrec": "SASRec (CE)", "lru": "LRURec",
                   "lru+sasrec": "LRURec+SASRec", "fused(lru+sasrec,hl=1)": "fused(LRURec+SASRec)",
                   "seeds4": "2 seeds each", "fused(seeds4,hl=1)": "fused (default)"}


def _plt():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _ci(m: dict) -> tuple[float, float, float]:
    """(mean, lower error, upper error) of a summarize() entry, for errorbar()."""
    return m["mean"], m["mean"] - m["low"], m["high"] - m["mean"]


def plot_accuracy(results_jsons: list[Path], path: Path) -> Path:
    """Bars with 95% CIs per retriever, published numbers as horizontal lines. Several
    results.json of the same protocol are merged (a later file's retriever wins)."""
    plt = _plt()
    res: dict = {}
    for results_json in results_jsons:
        data = json.loads(results_json.read_text())
        res.update(data["results"])
        meta = data["meta"]
    names = [k for k in MAIN_RETRIEVERS if k in res]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    styles = {"SASRec": ":", "LRURec": "--", "LlamaRec": "-."}
    for ax, (col, metric) in zip(axes, enumerate(("ndcg@10", "recall@10")), strict=True):
        for x, name in enumerate(names):
            mean, lo, hi = _ci(res[name]["metrics"][metric])
            color = "tab:red" if name.startswith("fused") else "tab:blue"
            ax.bar(x, mean, color=color, alpha=0.75)
            ax.errorbar(x, mean, yerr=[[lo], [hi]], color="black", capsize=3, lw=1)
            ax.text(x, 0.003 * (1 + col), f"{mean:.4f}", ha="center", va="bottom", fontsize=7,
                    color="white")
        for label, vals in PUBLISHED.items():
            ax.axhline(vals[col], color="grey", ls=styles[label], lw=1,
                       label=f"published {label} {vals[col]:.4f}")
        ax.set_xticks(range(len(names)), [MAIN_RETRIEVERS[n] for n in names], rotation=25,
                      ha="right", fontsize=8)
        ax.set_ylabel(f"test {metric.replace('ndcg', 'NDCG').replace('recall', 'Recall')}")
        ax.legend(fontsize=7, loc="upper left")
        top = max(res[n]["metrics"][metric]["high"] for n in names)
        ax.set_ylim(0, top * 1.35)
    fig.suptitle(f"{meta['dataset']}, full ranking, {meta['eval_users']} users "
                 "(95% bootstrap CIs; published: LlamaRec paper)", fontsize=9)
    fig.tight_layout()
    return _save(fig, plt, path)


# retriever in the cold benchmark -> (marker, colour), shared by both panels
_COLD_STYLE = {"sequential": ("o", "tab:blue"), "text": ("s", "tab:orange"),
               "fused-untuned": ("^", "black"), "fused": ("*", "tab:red")}


def _cold_label(name: str, meta: dict) -> str:
    if name == "sequential":
        return "LRURec (cold not indexed)"
    if name == "fused":
        c = meta["fusion"]["cold"]
        return f"fused default (a,o,g={c['scale']:g},{c['offset_spread_units']:g},{c['text_scale']:g})"
    if name == "fused-untuned":
        return "fused untuned (1,0,1)"
    if name.startswith("fused("):
        return f"fused fixed / floor {name[5:]}"
    return name


def plot_cold(folder: Path, path: Path) -> Path:
    """Cold vs warm test Recall@100 per retriever; validation placement grid."""
    plt = _plt()
    data = json.loads((folder / "results.json").read_text())
    res, meta = data["results"], data["meta"]
    cold, warm = res["cold targets"], res["warm targets"]
    names = [n for n in cold if not n.startswith("paired") and n != "fused-live"]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 4))
    for name in names:
        cx, cl, ch = _ci(cold[name]["recall@100"])
        wy, wl, wh = _ci(warm[name]["recall@100"])
        fmt, color = _COLD_STYLE.get(name, ("D", "tab:green"))
        ax.errorbar(cx, wy, xerr=[[cl], [ch]], yerr=[[wl], [wh]], fmt=fmt, color=color,
                    ms=10 if fmt == "*" else 6, capsize=2, lw=0.8,
                    label=f"{_cold_label(name, meta)}: {cx:.3f} / {wy:.3f}")
    ax.set_ylim(0, max(warm[n]["recall@100"]["high"] for n in names) * 1.1)
    ax.set_xlabel(f"test Recall@100, cold targets ({meta['users']['cold targets']} users)")
    ax.set_ylabel(f"test Recall@100, warm targets ({meta['users']['warm targets']} users)")
    ax.set_title(f"{meta['dataset']}: {meta['cold_items']} cold items (test, 95% CIs)",
                 fontsize=9)
    ax.legend(fontsize=6.5, loc="lower left", title="cold / warm Recall@100",
              title_fontsize=7)

    c = meta["fusion"]["cold"]
    cols = c["grid_columns"]
    ni, pi = cols.index("ndcg@10"), cols.index("pseudo_cold_recall@100")
    pts = list(c["grid"].values())
    bx.scatter([p[pi] for p in pts], [p[ni] for p in pts], s=8, color="grey", alpha=0.5,
               label=f"grid ({len(pts)} placements a,o,g)")
    u = c["valid_untuned"]
    bx.scatter([u["pseudo_cold_recall@100"]], [u["ndcg@10"]], marker="s", color="black",
               label="untuned (1,0,1)")
    v = c["valid"]
    bx.scatter([v["pseudo_cold_recall@100"]], [v["ndcg@10"]], marker="*", s=90, color="tab:red",
               label="default (1-SE rule)")
    for name in meta.get("fusion_fixed", {}):
        key = "scale={},offset={},text_scale={}".format(*name[6:-1].split(","))
        if key in c["grid"]:
            p = c["grid"][key]
            bx.scatter([p[pi]], [p[ni]], marker="D", color="tab:green", label=f"fixed {name[5:]}")
    bx.set_xlabel(f"validation pseudo-cold Recall@100 ({c['pseudo_cold_targets']} targets)")
    bx.set_ylabel("validation NDCG@10, all users")
    bx.set_title("cold placement grid (validation, pseudo-cold warm items)", fontsize=9)
    bx.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, plt, path)


def _save(fig, plt, path: Path) -> Path:  # type: ignore[no-untyped-def]
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--main", type=Path, action="append", required=True,
                    help="bench_sequential.py output folder (repeatable, merged; the default "
                         "fused retriever among them)")
    ap.add_argument("--cold", type=Path, action="append", default=[],
                    help="bench_sequential_cold.py output folder (repeatable)")
    ap.add_argument("--out", type=Path, default=Path("eval/plots"))
    args = ap.parse_args(argv)
    written = [plot_accuracy([m / "results.json" for m in args.main],
                             args.out / "sequential_accuracy.png")]
    for folder in args.cold:
        ds = json.loads((folder / "results.json").read_text())["meta"]["dataset"]
        written.append(plot_cold(folder, args.out / f"sequential_cold_{ds}.png"))
    for p in written:
        print(p)


if __name__ == "__main__":
    main()
