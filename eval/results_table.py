"""Print the markdown tables of eval/RESULTS.md section 3 from finished runs (metrics.json and
runs/<label>.jsonl); numbers are never typed by hand.

    python eval/results_table.py ml-small-5core-full ml-small-5core-cand20 ...
    python eval/results_table.py --beyond ml-small-full ml-100k-full   # one beyond-accuracy table
    python eval/results_table.py --pair ml-small-full                  # best two baselines, paired
    python eval/results_table.py --copy-plots ml-small-full            # -> eval/plots/baselines_*
    python eval/results_table.py --versus runA:label runB:label        # two rankers, paired

``--pair`` takes the two rankers with the highest mean NDCG@10 in the run and compares them
user by user (Fisher randomisation test, 10,000 sign flips, seeded by the run's seed; bootstrap
CI of the mean difference), from the per-user target ranks in the run files.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from llmrank.eval.metrics import metrics_from_ranks
from llmrank.eval.stats import paired_test

OUT = Path(__file__).resolve().parent / "out"
PLOTS = Path(__file__).resolve().parent / "plots"
FULL = [f"{m}@{k}" for m in ("recall", "ndcg", "mrr") for k in (10, 20)]
CAND = ["recall@10", "mrr@10"] + [f"ndcg@{k}" for k in (1, 5, 10, 20)]
BEYOND = ["diversity@10", "novelty@10", "popularity@10"]
NOT_BASELINES = {"oracle"}


def cell(ci: dict[str, Any] | None, digits: int = 4) -> str:
    if not ci or ci.get("mean") is None:
        return "-"
    return f"{ci['mean']:.{digits}f} ({ci['low']:.{digits - 1}f}-{ci['high']:.{digits - 1}f})"


def load(name: str) -> dict[str, Any]:
    meta: dict[str, Any] = json.loads((OUT / name / "metrics.json").read_text())
    return meta


def header(name: str, meta: dict[str, Any]) -> str:
    proto = meta["config"]["protocol"]
    pre = meta["preprocessing"]
    what = {"full": "full ranking, history masked",
            "candidates": f"target + {proto['n_negatives']} random negatives",
            "retriever": f"top-{proto['n_retrieve']} of {proto['retriever']} reordered"}[proto["name"]]
    return (f"**{name}** ({what}; {pre['dataset']}, kcore={pre['kcore']}: {pre['users']} users, "
            f"{pre['items']} items, {pre['interactions']} interactions; stage {proto['stage']}, "
            f"ties {proto['ties']}, seed {meta['seed']}; commit "
            f"{(meta['git'].get('commit') or '?')[:9]}, run {meta['finished'][:16]} UTC)")


def table(name: str) -> str:
    meta = load(name)
    proto = meta["config"]["protocol"]["name"]
    cols = CAND if proto == "candidates" else FULL
    ref = meta["config"]["run"].get("reference")
    lines = [
        header(name, meta), "",
        "| ranker | " + " | ".join(cols) + f" | p vs {ref} (NDCG@10) |",
        "|---|" + "---:|" * (len(cols) + 1),
    ]
    for label, res in meta["results"].items():
        p = res["paired_vs_reference"].get("ndcg@10")
        pv = "ref" if label == ref else (f"{p['p_value']:.2g}" if p else "-")
        lines.append(f"| {label} | " + " | ".join(cell(res["metrics"].get(c)) for c in cols)
                     + f" | {pv} |")
    if proto == "retriever":
        lines += ["", "Over the users whose target was retrieved only:", "",
                  "| ranker | retrieved | recall@10 | ndcg@10 | mrr@10 |", "|---|---:|---:|---:|---:|"]
        for label, res in meta["results"].items():
            sub = res["metrics_retrieved_users"]
            lines.append(f"| {label} | {res['retrieved_rate']:.3f} | "
                         + " | ".join(cell(sub.get(c)) for c in ("recall@10", "ndcg@10", "mrr@10"))
                         + " |")
    return "\n".join(lines) + "\n"


def beyond_table(names: list[str]) -> str:
    lines = ["| run | ranker | coverage | " + " | ".join(BEYOND) + " |",
             "|---|---|---:|" + "---:|" * len(BEYOND)]
    for name in names:
        meta = load(name)
        for label, res in meta["results"].items():
            b = res["beyond_accuracy"]
            lines.append(f"| {name} | {label} | {res['catalog_coverage']:.3f} | "
                         + " | ".join(f"{b[c]['mean']:.3f}" if c in b else "-" for c in BEYOND)
                         + " |")
    return "\n".join(lines) + "\n"


def user_ranks(name: str, label: str) -> tuple[list[str], np.ndarray]:
    users, ranks = [], []
    with (OUT / name / "runs" / f"{label}.jsonl").open(encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            users.append(rec["user"])
            ranks.append(np.inf if rec["rank"] is None else rec["rank"])
    return users, np.asarray(ranks, dtype=np.float64)


def pair_line(name: str, metrics: tuple[str, ...] = ("ndcg@10", "recall@10")) -> str:
    meta = load(name)
    means = {label: res["metrics"]["ndcg@10"]["mean"] for label, res in meta["results"].items()
             if label not in NOT_BASELINES}
    a, b = sorted(means, key=lambda lbl: -means[lbl])[:2]
    return f"- {name}: " + paired_ranks((name, a), (name, b), int(meta["seed"]), metrics)


def paired_ranks(a: tuple[str, str], b: tuple[str, str], seed: int = 0,
                 metrics: tuple[str, ...] = ("ndcg@10", "recall@10")) -> str:
    """Paired test of two (run, ranker label) pairs on the same users, from their run files;
    the runs may differ (e.g. two models scored by the same benchmark on the same users)."""
    users_a, ranks_a = user_ranks(*a)
    users_b, ranks_b = user_ranks(*b)
    if users_a != users_b:
        raise ValueError(f"{a} and {b} were evaluated on different users")
    per_a, per_b = metrics_from_ranks(ranks_a, (10,)), metrics_from_ranks(ranks_b, (10,))
    parts = []
    for m in metrics:
        r = paired_test(per_a[m], per_b[m], seed=seed)
        parts.append(f"{m} {r.mean_a:.4f} vs {r.mean_b:.4f}, diff {r.diff:+.4f} "
                     f"({r.diff_ci.low:+.4f} to {r.diff_ci.high:+.4f}), p = {r.p_value:.2g}")
    label = a[1] if a[0] == b[0] else "/".join(a)
    other = b[1] if a[0] == b[0] else "/".join(b)
    return f"**{label} vs {other}** ({len(users_a)} users): " + "; ".join(parts)


def copy_plots(name: str) -> list[Path]:
    """The run's metric-vs-K and trade-off plots as small palette PNGs for the repository."""
    from PIL import Image

    written = []
    for plot in ("metric_vs_k", "tradeoff"):
        src = OUT / name / f"{plot}.png"
        if not src.is_file():
            continue
        dst = PLOTS / f"baselines_{name}_{plot}.png"
        img = Image.open(src).convert("RGB").quantize(colors=64, method=Image.Quantize.MEDIANCUT)
        img.save(dst, optimize=True)
        written.append(dst)
    return written


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="run names under eval/out/")
    ap.add_argument("--beyond", action="store_true", help="one beyond-accuracy table for the runs")
    ap.add_argument("--pair", action="store_true", help="paired test of each run's best two rankers")
    ap.add_argument("--copy-plots", action="store_true", help="write eval/plots/baselines_<run>_*.png")
    ap.add_argument("--versus", action="store_true",
                    help="runs are RUN:LABEL RUN:LABEL: paired test of those two rankers")
    args = ap.parse_args()
    if args.copy_plots:
        for name in args.runs:
            for path in copy_plots(name):
                print(path)
    elif args.beyond:
        print(beyond_table(args.runs))
    elif args.versus:
        (run_a, label_a), (run_b, label_b) = (r.rsplit(":", 1) for r in args.runs)
        print(paired_ranks((run_a, label_a), (run_b, label_b)))
    elif args.pair:
        print("\n".join(pair_line(n) for n in args.runs))
    else:
        for name in args.runs:
            print(table(name))


if __name__ == "__main__":
    main()
