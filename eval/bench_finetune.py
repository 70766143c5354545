"""Benchmark of the fine-tuned reranker (eval/RESULTS.md section 6).

On ml-latest-small (5-core, LlamaRec preprocessing), SmolLM2-135M-Instruct zero-shot vs
LoRA-tuned under the 20-candidate protocol and the retriever top-20 protocol (fused
retriever), and the full pipeline (fused retriever + tuned reranker) under full-ranking
leave-one-out. Stages run one at a time (the machine is shared) and each writes under
``--out``; evaluations checkpoint per shard and resume.

    nice -n 10 python eval/bench_finetune.py retrievers
    nice -n 10 python eval/bench_finetune.py train --recipe finetune/sft_ml_small.toml
    nice -n 10 python eval/bench_finetune.py evaluate --adapter eval/out/finetune/sft-ml-small/adapter
    nice -n 10 python eval/bench_finetune.py crossdomain --from-adapter ml-small-sft
    python eval/bench_finetune.py report
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_finetune_lib import (  # noqa: E402
    OUT,
    build_retrievers,
    evaluate,
    per_user,
    prepared,
    retriever_dir,
    retriever_ranker,
    write_json,
)

log = logging.getLogger("bench_finetune")


def cmd_retrievers(args: argparse.Namespace) -> None:
    data = prepared(args.dataset, args.kcore)
    seconds = build_retrievers(data, args.out)
    write_json(args.out / "retrievers" / "build.json", {"seconds": seconds})


def cmd_train(args: argparse.Namespace) -> None:
    from llmrank.finetune.config import load_recipe
    from llmrank.finetune.sft import train_sft

    overrides: dict[str, Any] = {"examples.retriever_path": str(retriever_dir(args.out, "valid"))}
    if args.steps:
        overrides["train.max_steps"] = args.steps
    recipe = load_recipe(args.recipe, overrides)
    result = train_sft(recipe, resume=args.resume)
    write_json(args.out / f"train_{recipe.name}.json", result.summary())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("stage", choices=["retrievers", "train", "evaluate", "crossdomain", "report"])
    ap.add_argument("--dataset", default="ml-latest-small")
    ap.add_argument("--kcore", type=int, default=5)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--recipe", default="finetune/sft_ml_small.toml")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    import torch

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    {"retrievers": cmd_retrievers, "train": cmd_train}[args.stage](args)
    log.info("%s done in %.0fs", args.stage, time.perf_counter() - start)
    del np, per_user, evaluate, retriever_ranker


if __name__ == "__main__":
    main()
