"""Score-averaging ensemble of trained sequential models (e.g. LRURec + SASRec): the weight
w of ``w * a + (1 - w) * b`` (logits) is chosen on the validation split, then the ensemble is
reported on test (full ranking, seen items excluded, exact scores over the whole catalog;
equal to a flat FAISS search over concatenated vectors [w s_a, (1-w) s_b, 1] . [e_a, e_b,
w b_a + (1-w) b_b]). Models come from bench_sequential.py's cache.

    nice -n 10 python eval/bench_sequential_ensemble.py \\
        --models eval/out/sequential_ml-latest-small_5core/models --a lru --b sasrec \\
        --out eval/out/sequential_ml-latest-small_5core_ensemble
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_sequential_lib import DATA_ROOT, fmt, load_split, paired, summarize

log = logging.getLogger("bench_sequential_ensemble")
WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)


def stage_ranks(scores: np.ndarray, hists: list[np.ndarray], targets: np.ndarray) -> np.ndarray:
    from llmrank.eval.metrics import target_ranks

    s = scores.astype(np.float64).copy()
    for i, h in enumerate(hists):
        s[i, np.asarray(h, dtype=np.int64)] = -np.inf
    return target_ranks(s, targets)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="ml-latest-small")
    ap.add_argument("--data-root", type=Path, default=DATA_ROOT)
    ap.add_argument("--kcore", type=int, default=5)
    ap.add_argument("--models", type=Path, required=True)
    ap.add_argument("--a", default="lru")
    ap.add_argument("--b", default="sasrec")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    import torch

    torch.set_num_threads(1)
    from llmrank.retrieve.sequential.model import SequentialModel

    args.out.mkdir(parents=True, exist_ok=True)
    _, split = load_split(args.dataset, args.kcore, args.data_root)
    a = SequentialModel.load(args.models / args.a)
    b = SequentialModel.load(args.models / args.b)
    users = split.eval_users()
    per_stage = {}
    for stage in ("valid", "test"):
        hists = [split.history(int(u), stage) for u in users]
        targets = np.array([split.target(int(u), stage) for u in users], dtype=np.int64)
        per_stage[stage] = (hists, targets, a.scores(hists), b.scores(hists))
    hv, tv, sa, sb = per_stage["valid"]
    grid = {w: float(summarize(stage_ranks(w * sa + (1 - w) * sb, hv, tv))["ndcg@10"]["mean"])
            for w in WEIGHTS}
    best = max(grid, key=lambda w: grid[w])
    log.info("validation NDCG@10 by w: %s; chosen w=%s", grid, best)
    ht, tt, ta, tb = per_stage["test"]
    ranks = {args.a: stage_ranks(ta, ht, tt), args.b: stage_ranks(tb, ht, tt),
             "ensemble": stage_ranks(best * ta + (1 - best) * tb, ht, tt)}
    results = {name: {"metrics": summarize(r)} for name, r in ranks.items()}
    results["ensemble"]["paired_vs_" + args.a] = paired(ranks["ensemble"], ranks[args.a])
    out = {"meta": {"dataset": split.dataset.name, "protocol": "full ranking leave-one-out, "
                    "test split, seen items excluded", "a": args.a, "b": args.b,
                    "valid_ndcg10_by_w": grid, "chosen_w": best, "command": "python "
                    + " ".join(sys.argv), "date": datetime.now(UTC).isoformat(timespec="seconds")},
           "results": results}
    (args.out / "results.json").write_text(json.dumps(out, indent=1))
    for name, r in results.items():
        m = r["metrics"]
        print(name, "ndcg@10", fmt(m["ndcg@10"]), "recall@10", fmt(m["recall@10"]),
              "recall@20", fmt(m["recall@20"]))
    print("paired ensemble vs", args.a, {k: (round(v["diff"], 4), round(v["p_value"], 4))
                                         for k, v in results["ensemble"]["paired_vs_" + args.a].items()})


if __name__ == "__main__":
    main()
