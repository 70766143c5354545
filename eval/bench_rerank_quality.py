"""Zero-shot reranker quality on ml-latest-small (5-core, test stage) under the 20-candidate
protocol and the retriever top-20 protocol (text retriever), with 1 and 3 permutations,
next to the random baseline, through the evaluation harness (bootstrap CIs, paired tests).

    nice -n 10 python eval/bench_rerank_quality.py --users 200 --protocol candidates
    nice -n 10 python eval/bench_rerank_quality.py --users 200 --protocol retriever
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import torch
from bench_rerank_lib import PermutationCache, ZeroShotRanker  # type: ignore[import-not-found]

from llmrank.eval.api import run_eval
from llmrank.eval.config import EvalConfig


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=200)
    ap.add_argument("--protocol", choices=["candidates", "retriever"], default="candidates")
    ap.add_argument("--model", default="default")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("eval/out/rerank_zeroshot"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(args.threads)
    from llmrank.llm.transformers_backend import TransformersLLM
    from llmrank.rerank.prompt import RankPromptBuilder

    llm = TransformersLLM(args.model, batch_size=4)
    cache = PermutationCache(llm, RankPromptBuilder(llm), seed=0)
    rankers = {"llm-zero-shot": ZeroShotRanker(cache, 1, "llm-zero-shot"),
               "llm-zero-shot-perm3": ZeroShotRanker(cache, 3, "llm-zero-shot-perm3")}
    specs = [{"name": "random"}, {"name": "rerank", "label": "llm-zero-shot"},
             {"name": "rerank", "label": "llm-zero-shot-perm3"}]
    protocol: dict = {"name": args.protocol, "stage": "test", "max_users": args.users}
    if args.protocol == "retriever":
        specs.insert(0, {"name": "retriever", "label": "text-retriever", "options": {"kind": "text"}})
        protocol.update(retriever="text-retriever", n_retrieve=20)
    name = f"rerank_zeroshot_{args.protocol}"
    cfg = EvalConfig.model_validate({
        "name": name, "seed": 0, "data": {"dataset": "ml-latest-small", "kcore": 5},
        "protocol": protocol, "rankers": specs,
        "run": {"out": str(args.out / args.protocol), "reference": "random", "shard_size": 20},
    })
    t0 = time.perf_counter()
    rep = run_eval(cfg, rankers=rankers, fresh=True)
    summary = {r.label: dict(r.summary) for r in rep.results}
    retrieved = {r.label: dict(r.retrieved_summary) for r in rep.results if r.retrieved_summary}
    paired = {r.label: r.paired for r in rep.results if r.paired is not None}
    out = {"protocol": args.protocol, "users": args.users, "seconds": time.perf_counter() - t0,
           "seconds_per_scored_prompt": sum(cache.seconds) / max(1, len(cache.seconds)),
           "summary": summary, "retrieved_summary": retrieved, "paired": paired,
           "retrieved_rate": {r.label: r.retrieved_rate for r in rep.results}}
    (args.out / args.protocol).mkdir(parents=True, exist_ok=True)
    (args.out / args.protocol / "summary.json").write_text(json.dumps(out, indent=2, default=str))
    print(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main()
