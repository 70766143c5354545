"""Grid-search the baselines' hyperparameters on the VALIDATION split (NDCG@10 under the
protocol being reported: full ranking or 20 candidates), never on test. The chosen values
are copied into eval/configs/*.toml.

    nice -n 10 python eval/tune_baselines.py --dataset ml-latest-small --kcore 5 \
        --out eval/out/tuning/ml-small-5core.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import time
from pathlib import Path
from typing import Any

from llmrank.eval import EvalProtocol, evaluate_ranker
from llmrank.eval.config import EvalData
from llmrank.eval.data import prepare
from llmrank.registry import rankers

log = logging.getLogger("tune")

GRIDS: dict[str, dict[str, list[Any]]] = {
    "itemknn": {"neighbors": [2, 3, 5, 10, 20, 50, 100, 200, 400], "shrinkage": [0.0, 10.0, 50.0]},
    "als": {"factors": [16, 32, 64, 128], "regularization": [0.1, 1.0, 10.0, 30.0],
            "alpha": [1.0, 5.0, 20.0]},
    "bpr": {"factors": [32, 64, 128], "learning_rate": [0.01, 0.05, 0.1],
            "iterations": [100, 300]},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--kcore", type=int, default=0)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--rankers", default="itemknn,als,bpr")
    ap.add_argument("--metric", default="ndcg@10")
    ap.add_argument("--protocol", default="full", choices=["full", "candidates"])
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    data = prepare(EvalData(dataset=args.dataset, kcore=args.kcore, data_dir=args.data_dir))
    proto = EvalProtocol(name=args.protocol, stage="valid")
    report: dict[str, Any] = {"dataset": data.preprocessing,
                              "protocol": f"{args.protocol}, stage valid",
                              "metric": args.metric, "rankers": {}}
    for name in args.rankers.split(","):
        grid = GRIDS[name]
        trials = []
        for values in itertools.product(*grid.values()):
            options = dict(zip(grid, values, strict=True))
            t = time.perf_counter()
            res = evaluate_ranker(rankers.create(name, **options), data.split, proto)
            ci = res.summary[args.metric]
            trials.append({"options": options, "mean": ci.mean, "low": ci.low, "high": ci.high,
                           "seconds": round(time.perf_counter() - t, 2)})
            log.info("%s %s %s=%.4f", name, options, args.metric, ci.mean)
        best = max(trials, key=lambda tr: tr["mean"])
        report["rankers"][name] = {"best": best, "trials": trials}
        log.info("best %s: %s (%.4f)", name, best["options"], best["mean"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
