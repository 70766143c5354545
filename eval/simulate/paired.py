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

from llmrank.explore.report import _boot_mean


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
    half = len(d) // 2
    for name, part in (("all", d), ("first 50%", d[:half]), ("last 50%", d[half:])):
        lo, hi = _boot_mean(part)
        print(f"{args.a} - {args.b} [{name}, {len(part)} requests]: {part.mean():+.4f} [{lo:+.4f}, {hi:+.4f}]")


if __name__ == "__main__":
    main()
