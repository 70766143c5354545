"""Run the section-7 replays (both datasets) through the library function behind
``llmrank simulate`` and write eval/out/simulate/<dataset>/ (metrics.json, report.md, plots).

    nice -n 10 python eval/simulate/run_replays.py [--data-dir ../shared/datasets] [--steps N]
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from llmrank.explore.report import markdown, summarize, write_report
from llmrank.explore.simulate import load_simulate_config, simulate

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default=str(HERE.parents[2] / "shared" / "datasets"))
    ap.add_argument("--datasets", default="ml-100k,ml-latest-small")
    ap.add_argument("--steps", type=int, default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for name in args.datasets.split(","):
        cfg = load_simulate_config(HERE / f"{name}.toml")
        cfg.data.data_dir = args.data_dir
        started = time.time()

        def tick(done: int, total: int, name: str = name, started: float = started) -> None:
            if done % 1000 == 0 or done == total:
                logging.info("%s: %d/%d requests, %.0fs", name, done, total, time.time() - started)

        result = simulate(cfg, steps=args.steps, progress=tick)
        summary = summarize(result)
        write_report(summary, cfg.out or f"eval/out/simulate/{name}", result=result)
        logging.info("%s done in %.0fs\n%s", name, time.time() - started, markdown(summary))


if __name__ == "__main__":
    main()
