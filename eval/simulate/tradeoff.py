"""Multi-objective trade-offs in the replay (section 7 of eval/RESULTS.md): hit rate against
diversity (intra-list distance), novelty, calibration (KL to the user's genre mix) and catalog
coverage, as the objective weights of the slate step grow.

    PYTHONPATH=. nice -n 10 python eval/simulate/tradeoff.py [--dataset ml-100k] [--steps 5000]
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from llmrank.config import DataConfig
from llmrank.data import load_dataset
from llmrank.explore.priors import ItemKNNPrior
from llmrank.explore.replay import PolicySpec, ReplayConfig, replay
from llmrank.explore.report import summarize

HERE = Path(__file__).resolve().parent
ARMS = [("greedy", {})]
ARMS += [(f"mmr {w}", {"objectives": {"diversity": w}}) for w in (0.2, 0.4, 0.6)]
ARMS += [(f"novelty {w}", {"objectives": {"novelty": w}}) for w in (0.2, 0.4)]
ARMS += [(f"calibration {w}", {"objectives": {"calibration": w}}) for w in (0.3, 0.6)]
ARMS += [("max 3 per genre", {"objectives": {"max_per": {"genre": 3}}})]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="ml-100k")
    ap.add_argument("--data-dir", default=str(HERE.parents[2] / "shared" / "datasets"))
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--out", default="eval/out/tradeoff")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    ds = load_dataset(DataConfig(dataset=args.dataset, data_dir=args.data_dir))
    specs = [PolicySpec(label, "greedy", opts) for label, opts in ARMS]
    cfg = ReplayConfig(k=10, n_candidates=100, warmup=0.5, max_steps=args.steps, lookahead=1, seed=0)
    res = replay(ds, specs, ItemKNNPrior(), cfg,
                 progress=lambda d, t: d % 1000 == 0 and logging.info("%d/%d", d, t))
    summary = summarize(res)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(summary, indent=1))
    keys = ("hit_rate", "intra_list_distance", "novelty_bits", "miscalibration_kl", "coverage")
    lines = ["| slate step (greedy over the item-kNN prior) | hit rate [95% CI] | intra-list distance "
             "| novelty (bits) | miscalibration KL | coverage |", "|---|---|---|---|---|---|"]
    for label, r in summary["policies"].items():
        lo, hi = r["hit_rate_ci"]
        lines.append(f"| {label} | {r['hit_rate']:.4f} [{lo:.4f}, {hi:.4f}] | {r['intra_list_distance']:.3f} | "
                     f"{r['novelty_bits']:.2f} | {r['miscalibration_kl']:.3f} | {r['coverage']:.3f} |")
    (out / "report.md").write_text("\n".join(lines) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    for ax, key, name in zip(axes, keys[1:4], ("intra-list distance", "novelty (bits)",
                                                 "miscalibration KL (lower = calibrated)"), strict=True):
        for label, r in summary["policies"].items():
            ax.scatter(r[key], r["hit_rate"], s=18)
            ax.annotate(label, (r[key], r["hit_rate"]), fontsize=7)
        ax.set_xlabel(name)
        ax.set_ylabel("hit rate")
        ax.grid(alpha=0.3)
    fig.suptitle(f"{args.dataset}: multi-objective trade-offs ({res.steps} replayed requests)", fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "tradeoff.png", dpi=110)
    logging.info("\n%s", "\n".join(lines))


if __name__ == "__main__":
    main()
