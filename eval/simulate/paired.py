"""Paired hit-rate difference between two policies of one replay, from its traces.npz (the same
requests served to both): mean of hits[a] - hits[b] with a 95% bootstrap interval over requests,
overall, in the first half and in the last half.

    python eval/simulate/paired.py eval/out/llm_prior/llm/traces.npz thompson thompson-flat
    # b from another replay of the same requests (same data, seed and steps; checked on the timestamps)
    python eval/simulate/paired.py eval/out/text/ml-100k/traces.npz linucb linucb \
        --b-from eval/out/svd/ml-100k/traces.npz
"""

from __future__ import annotations

import argparse

import numpy as np

from llmrank.explore.report import bootstrap_mean_ci


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("traces")
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--b-from", help="traces.npz of another replay of the same requests")
    args = ap.parse_args()
    z = np.load(args.traces)
    zb = np.load(args.b_from) if args.b_from else z
    if not np.array_equal(z["timestamps"], zb["timestamps"]):
        raise SystemExit("the two replays did not serve the same requests")
    d = z[f"hits/{args.a}"].astype(np.float64) - zb[f"hits/{args.b}"].astype(np.float64)
    # users are resampled as units where the replay recorded them (traces written before
    # 2026-11-29 did not: their requests are resampled, an interval 7-10% too narrow)
    users = z["users"] if "users" in z.files and len(z["users"]) == len(d) else None
    unit = "users resampled" if users is not None else "requests resampled: no users in these traces"
    half = len(d) // 2
    for name, sl in (("all", slice(None)), ("first 50%", slice(None, half)), ("last 50%", slice(half, None))):
        part = d[sl]
        lo, hi = bootstrap_mean_ci(part, None if users is None else users[sl])
        print(f"{args.a} - {args.b} [{name}, {len(part)} requests, {unit}]: "
              f"{part.mean():+.4f} [{lo:+.4f}, {hi:+.4f}]")


if __name__ == "__main__":
    main()
