"""Off-policy evaluation on real logs (section 7 of eval/RESULTS.md): epsilon-greedy (0.3) is
the logging policy in an ml-100k replay, its impressions (exact propensities, the 100
candidates with their scores) and clicks go to a SQLite FeedbackStore exactly as in production, and the value of other policies is estimated from that store with the same code as
``llmrank feedback ope``. Greedy and epsilon-greedy run on the very same requests in the
replay, so their replayed clicks per request are the reference (softmax is a hard target
here: it puts mass on slates the logger rarely shows, and its effective sample size says so).

    PYTHONPATH=. nice -n 10 python eval/simulate/ope_replay.py [--steps 3000]
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from llmrank.config import DataConfig
from llmrank.data import load_dataset
from llmrank.explore import make_policy
from llmrank.explore.ope import evaluate, from_store, memoize, policy_target
from llmrank.explore.priors import ItemKNNPrior
from llmrank.explore.replay import PolicySpec, ReplayConfig, replay
from llmrank.explore.reward_model import cross_fit
from llmrank.feedback.sqlite_store import SqliteFeedbackStore

HERE = Path(__file__).resolve().parent
LOGGER = PolicySpec("egreedy(0.3)", "egreedy", {"epsilon": 0.3})
TARGETS = [PolicySpec("greedy", "greedy"), PolicySpec("egreedy(0.1)", "egreedy", {"epsilon": 0.1}),
           PolicySpec("egreedy(0.5)", "egreedy", {"epsilon": 0.5}),
           PolicySpec("softmax(0.3)", "softmax", {"temperature": 0.3})]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="ml-100k")
    ap.add_argument("--data-dir", default=str(HERE.parents[2] / "shared" / "datasets"))
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--out", default="eval/out/ope_replay")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    db = out / "feedback.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    store = SqliteFeedbackStore(db, synchronous="NORMAL")
    ds = load_dataset(DataConfig(dataset=args.dataset, data_dir=args.data_dir))
    cfg = ReplayConfig(k=10, n_candidates=100, warmup=0.5, max_steps=args.steps, lookahead=1,
                       embedding_dim=0, seed=0)
    res = replay(ds, [LOGGER, *TARGETS], ItemKNNPrior(), cfg, log_to=store, log_label=LOGGER.label,
                 progress=lambda d, t: d % 500 == 0 and logging.info("%d/%d", d, t))
    rounds, skipped = from_store(store)
    k = max(len(r.shown) for r in rounds)
    model = memoize(cross_fit(rounds, k))
    report = {"logger": LOGGER.label, "rounds": len(rounds), "skipped": skipped,
              "logger_replayed": float(res.traces[LOGGER.label].clicks.mean()), "targets": {}}
    lines = [f"Logs: {len(rounds)} impressions of `{LOGGER.label}` (exact propensities) in the "
             f"{args.dataset} replay; value = clicks per request.", "",
             "| target | replayed on the same requests | IPS [95% CI] | SNIPS [95% CI] | DR [95% CI] | ESS |",
             "|---|---|---|---|---|---|"]
    for spec in TARGETS:
        target = memoize(policy_target(make_policy(spec.name, spec.options)))
        est = evaluate(rounds, target, reward_model=model, n_boot=1000,
                       estimators=("ips", "snips", "dr"))
        replayed = float(res.traces[spec.label].clicks.mean())
        report["targets"][spec.label] = {"replayed": replayed, **{
            name: {"value": e.value, "ci": [e.ci_low, e.ci_high], "ess": e.ess,
                   "rel_err": (e.value - replayed) / replayed, "covers": e.covers(replayed)}
            for name, e in est.items()}}
        cell = lambda n, est=est: f"{est[n].value:.4f} [{est[n].ci_low:.4f}, {est[n].ci_high:.4f}]"  # noqa: E731
        lines.append(f"| {spec.label} | {replayed:.4f} | {cell('ips')} | {cell('snips')} | {cell('dr')} "
                     f"| {est['ips'].ess:.0f} |")
    (out / "metrics.json").write_text(json.dumps(report, indent=1))
    (out / "report.md").write_text("\n".join(lines) + "\n")
    logging.info("\n%s", "\n".join(lines))


if __name__ == "__main__":
    main()
