"""Off-policy evaluation against known ground truth (section 7 of eval/RESULTS.md).

A synthetic world with known click probabilities (llmrank.explore.synthetic) is logged by one
policy; each target policy's value (clicks per slate) is then estimated from those logs with
IPS, SNIPS, DR and DM, and compared with (a) its exact expected value on the logged contexts
and (b) its replayed value: the target run online in the same world on fresh requests.
Thompson sampling and LinUCB are first trained online (2,000 requests), then frozen.
A second part repeats small logs (20 seeds) to check bias and interval coverage.

    PYTHONPATH=. nice -n 10 python eval/simulate/ope_synthetic.py [--rounds 20000]
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from llmrank.explore import make_policy
from llmrank.explore.ope import evaluate, memoize, policy_target
from llmrank.explore.reward_model import cross_fit
from llmrank.explore.synthetic import SyntheticWorld

log = logging.getLogger("ope")

TARGETS: list[tuple[str, str, dict[str, Any]]] = [
    ("greedy", "greedy", {}),
    ("egreedy(0.1)", "egreedy", {"epsilon": 0.1}),
    ("softmax(0.5)", "softmax", {"temperature": 0.5}),
    ("thompson (trained, frozen)", "thompson", {"prior_strength": 10.0, "base_rate": 0.1, "mc_samples": 300}),
    ("linucb (trained, frozen)", "linucb", {"alpha": 0.1, "base_rate": 0.1}),
]


def target_policy(world: SyntheticWorld, name: str, opts: dict[str, Any], seed: int) -> Any:
    policy = make_policy(name, {**opts, "seed": seed}, features=world.features())
    if name in ("thompson", "linucb"):
        world.run(policy, 2000, seed=seed + 100, learn=True, log=False)  # train, then freeze
    return policy


def main_run(world: SyntheticWorld, rounds_n: int, logger: tuple[str, dict[str, Any]],
             seed: int) -> dict[str, Any]:
    t0 = time.time()
    rounds, logged_value, _ = world.run(make_policy(logger[0], {**logger[1], "seed": seed}), rounds_n,
                                        seed=seed, learn=False)
    log.info("logged %d rounds in %.0fs (logger value %.4f)", rounds_n, time.time() - t0, logged_value)
    model = memoize(cross_fit(rounds, world.k, seed=seed))
    out: dict[str, Any] = {"logger": {"name": logger[0], **logger[1], "value": logged_value},
                           "rounds": rounds_n, "targets": {}}
    for label, name, opts in TARGETS:
        t0 = time.time()
        policy = target_policy(world, name, opts, seed)
        target = memoize(policy_target(policy))
        truth = world.true_value(rounds, target)
        _, replayed, _ = world.run(policy, rounds_n, seed=seed + 7, learn=False, log=False)
        est = evaluate(rounds, target, reward_model=model, n_boot=1000, seed=seed)
        out["targets"][label] = {
            "truth": truth, "replayed": replayed,
            "estimates": {k: {"value": e.value, "ci": [e.ci_low, e.ci_high], "ess": e.ess,
                              "rel_err_vs_replayed": (e.value - replayed) / replayed,
                              "rel_err_vs_truth": (e.value - truth) / truth,
                              "covers_truth": e.covers(truth), "covers_replayed": e.covers(replayed)}
                          for k, e in est.items()},
        }
        log.info("%s: truth %.4f replayed %.4f %s (%.0fs)", label, truth, replayed,
                 {k: round(e.value, 4) for k, e in est.items()}, time.time() - t0)
    return out


def coverage_study(reps: int, rounds_n: int) -> dict[str, Any]:
    """Small logs over many seeds: mean estimate vs mean truth, and how often the 95% CI covers."""
    res: dict[str, dict[str, list[Any]]] = {}
    for rep in range(reps):
        world = SyntheticWorld(seed=1000 + rep)
        rounds, _, _ = world.run(make_policy("egreedy", {"epsilon": 0.3, "seed": rep}), rounds_n,
                                 seed=rep, learn=False)
        model = memoize(cross_fit(rounds, world.k, seed=rep))
        for name, opts in (("greedy", {}), ("egreedy", {"epsilon": 0.1})):
            target = memoize(policy_target(make_policy(name, opts)))
            truth = world.true_value(rounds, target)
            for k, e in evaluate(rounds, target, reward_model=model, n_boot=500, seed=rep,
                                 estimators=("ips", "snips", "dr")).items():
                row = res.setdefault(f"{name}/{k}", {"est": [], "truth": [], "cover": []})
                row["est"].append(e.value)
                row["truth"].append(truth)
                row["cover"].append(e.covers(truth))
        log.info("coverage study %d/%d", rep + 1, reps)
    return {key: {"mean_estimate": float(np.mean(r["est"])), "mean_truth": float(np.mean(r["truth"])),
                  "mean_rel_bias": float(np.mean((np.array(r["est"]) - r["truth"]) / np.array(r["truth"]))),
                  "ci_coverage": float(np.mean(r["cover"])), "reps": reps, "rounds": rounds_n}
            for key, r in res.items()}


def markdown(main: dict[str, Any], cov: dict[str, Any]) -> str:
    lg = main["logger"]
    lines = [f"Logs: {main['rounds']} slates of `{lg['name']}` "
             f"({', '.join(f'{k}={v}' for k, v in lg.items() if k not in ('name', 'value'))}); "
             "value = expected clicks per slate (k=5 of 20 candidates).", "",
             "| target | truth | replayed | IPS [95% CI] | SNIPS [95% CI] | DR [95% CI] | DM | max err vs replayed |",
             "|---|---|---|---|---|---|---|---|"]
    for label, t in main["targets"].items():
        e = t["estimates"]
        cell = lambda k, e=e: f"{e[k]['value']:.4f} [{e[k]['ci'][0]:.4f}, {e[k]['ci'][1]:.4f}]"  # noqa: E731
        worst = max(abs(e[k]["rel_err_vs_replayed"]) for k in ("ips", "snips", "dr"))
        lines.append(f"| {label} | {t['truth']:.4f} | {t['replayed']:.4f} | {cell('ips')} | {cell('snips')} "
                     f"| {cell('dr')} | {e['dm']['value']:.4f} | {100 * worst:.1f}% |")
    lines += ["", "| target/estimator | mean estimate | mean truth | mean relative bias | 95% CI coverage |",
              "|---|---|---|---|---|"]
    for key, r in cov.items():
        lines.append(f"| {key} | {r['mean_estimate']:.4f} | {r['mean_truth']:.4f} | "
                     f"{100 * r['mean_rel_bias']:+.1f}% | {r['ci_coverage']:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=20000)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--rep-rounds", type=int, default=2000)
    ap.add_argument("--out", default="eval/out/ope_synthetic")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    world = SyntheticWorld(n_users=500, n_items=1000, seed=0)
    main_res = main_run(world, args.rounds, ("softmax", {"temperature": 1.0}), seed=0)
    cov = coverage_study(args.reps, args.rep_rounds)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps({"main": main_res, "coverage": cov}, indent=1))
    md = markdown(main_res, cov)
    (out / "report.md").write_text(md)
    log.info("\n%s", md)


if __name__ == "__main__":
    main()
