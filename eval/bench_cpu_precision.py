"""Which precision should the CPU reranker run in? fp32 (the default) against PyTorch dynamic
int8 quantization of every Linear layer and bf16, on the same real rank prompts (ml-latest-small
5-core, test stage, 20 candidates): seconds per prompt, and how far each moves the label
scores that rank the candidates (max |delta log-prob|, Spearman correlation of the candidate
order, top-1 agreement with fp32).

A faster precision is only worth shipping if it keeps the ranking; this answers both in one
run, on one machine, as ratios.

    OMP_WAIT_POLICY=PASSIVE python eval/bench_cpu_precision.py --users 10 --threads 2
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from bench_rerank_lib import (  # type: ignore[import-not-found]
    candidate_lists,
    prepared,
    rank_input,
    sample_users,
)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def score_all(scorer: Any, inputs: list[Any]) -> tuple[np.ndarray, list[float], list[int]]:
    """Label scores, seconds and prompt tokens per prompt, one prompt at a time (a serving
    latency)."""
    rows, seconds, tokens = [], [], []
    for inp in inputs:
        t = time.perf_counter()
        out = scorer.score([inp])[0]
        seconds.append(time.perf_counter() - t)
        rows.append(out.scores)
        tokens.append(out.prompt_tokens)
    return np.stack(rows), seconds, tokens


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--users", type=int, default=10)
    ap.add_argument("--bf16-users", type=int, default=3, help="bf16 is slow on CPUs without bf16 units")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("eval/out/cpu_precision.json"))
    args = ap.parse_args()

    import torch
    from torch.ao.quantization import quantize_dynamic

    from llmrank.llm.transformers_backend import TransformersLLM
    from llmrank.rerank.prompt import RankPromptBuilder
    from llmrank.rerank.scorer import LabelScorer

    torch.set_num_threads(args.threads)
    split = prepared().split
    users = sample_users(split, args.users)
    cands = candidate_lists(split, users)
    inputs = [rank_input(split, int(u), c, "test") for u, c in zip(users, cands, strict=True)]

    def scorer_for(llm: Any) -> LabelScorer:
        return LabelScorer(llm, RankPromptBuilder(llm), permutations=1, seed=0)

    fp32 = TransformersLLM("default", threads=args.threads, dtype="float32", prefix_reuse=False)
    score_all(scorer_for(fp32), inputs[:1])  # warm-up, untimed
    ref, ref_s, tokens = score_all(scorer_for(fp32), inputs)
    results: dict[str, Any] = {"users": len(inputs), "threads": args.threads,
                               "prompt_tokens_mean": round(float(np.mean(tokens)), 1), "variants": {}}

    def record(name: str, scores: np.ndarray, seconds: list[float]) -> None:
        n = len(scores)
        results["variants"][name] = {
            "prompts": n, "s_per_prompt_p50": round(float(np.median(seconds)), 3),
            "speedup_vs_fp32_p50": round(float(np.median(ref_s[:n]) / np.median(seconds)), 2),
            "max_abs_logprob_diff": round(float(np.abs(scores - ref[:n]).max()), 4),
            "spearman_vs_fp32_mean": round(float(np.mean([spearman(a, b) for a, b in
                                                          zip(scores, ref[:n], strict=True)])), 3),
            "top1_agreement": round(float((scores.argmax(1) == ref[:n].argmax(1)).mean()), 3)}

    record("fp32", ref, ref_s)
    int8 = TransformersLLM("default", threads=args.threads, dtype="float32", prefix_reuse=False)
    int8.model = quantize_dynamic(int8.model, {torch.nn.Linear}, dtype=torch.qint8)
    score_all(scorer_for(int8), inputs[:1])
    record("int8 dynamic (Linear)", *score_all(scorer_for(int8), inputs)[:2])
    del int8
    if args.bf16_users > 0:
        bf16 = TransformersLLM("default", threads=args.threads, dtype="bfloat16", prefix_reuse=False)
        score_all(scorer_for(bf16), inputs[:1])
        record("bf16", *score_all(scorer_for(bf16), inputs[: args.bf16_users])[:2])
    results["torch"] = torch.__version__
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
