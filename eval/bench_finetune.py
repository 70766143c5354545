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
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_finetune_lib import (
    OUT,
    TargetListedOnly,
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


def _ranker(adapter: str | None, label: str, out: Path, prompt: Any) -> Any:
    from llmrank.finetune.evaluate import RerankRanker

    return RerankRanker("default", adapter, name=label, prompt=prompt, batch_size=4,
                        cache_path=out / "cache" / f"{label}.jsonl")


def _summ(res: Any) -> dict[str, Any]:
    d = res.to_dict()
    return {"n_users": d["n_users"], "metrics": {k: d["metrics"][k] for k in
            ("ndcg@1", "ndcg@5", "ndcg@10", "ndcg@20", "recall@10", "recall@20", "mrr@10")
            if k in d["metrics"]},
            "retrieved_rate": d["retrieved_rate"], "score_seconds": d["score_seconds"],
            "retrieved_users": {k: v for k, v in d["metrics_retrieved_users"].items()
                                if k in ("ndcg@10", "recall@10")}}


def _paired(a: Any, b: Any, seed: int = 0) -> dict[str, Any]:
    from llmrank.eval.stats import paired_test

    out = {}
    for m in ("ndcg@10", "recall@10", "ndcg@20"):
        r = paired_test(per_user(a, m), per_user(b, m), seed=seed)
        out[m] = {"diff": r.diff, "ci": [r.diff_ci.low, r.diff_ci.high], "p": r.p_value,
                  "relative": r.diff / r.mean_b if r.mean_b else None,
                  "a": r.mean_a, "b": r.mean_b}
    return out


def cmd_evaluate(args: argparse.Namespace) -> None:
    """Zero-shot vs tuned under the 20-candidate and retriever top-20 protocols (test
    stage, all users), the retriever alone under full ranking, and the blend weight of the
    retriever's rank prior chosen on the validation stage."""
    from llmrank.finetune.artifacts import prompt_spec_for

    data = prepared(args.dataset, args.kcore)
    split, out = data.split, args.out
    spec = prompt_spec_for(args.adapter)  # zero-shot reads the same prompts as the adapter
    retr = retriever_ranker(out, "valid")
    retr.fit(split, "test")
    users = args.users
    cand = {"name": "candidates", "stage": "test", "max_users": args.cand_users or users}
    rtop = {"name": "retriever", "stage": "test", "retriever": "fused", "max_users": users}
    results: dict[str, Any] = {"prompt": spec.__dict__, "adapter": args.adapter,
                               "data": data.describe(), "users": users}
    ck = out / "checkpoints"
    full = evaluate(retr, split, {"name": "full", "stage": "test", "max_users": users},
                    label="fused-retriever", ckpt=ck / "retriever-full")
    results["retriever_full"] = _summ(full)
    rankers = {"tuned": _ranker(args.adapter, "tuned", out, spec)}
    if not args.skip_zero_shot:
        rankers["zero-shot"] = _ranker(None, "zero-shot", out, spec)
    res: dict[str, Any] = {}
    for label, ranker in rankers.items():
        t = time.perf_counter()
        res[f"{label}/candidates"] = evaluate(ranker, split, cand, label=label,
                                              ckpt=ck / f"{label}-candidates")
        res[f"{label}/retriever"] = evaluate(TargetListedOnly(ranker, split), split, rtop,
                                             retriever=retr, label=label,
                                             ckpt=ck / f"{label}-retriever")
        log.info("%s evaluated in %.0fs", label, time.perf_counter() - t)
    # weight of the production blend with the retriever's scores, chosen on validation users
    retr_valid = retriever_ranker(out, "valid")
    retr_valid.fit(split, "valid")
    tuned = rankers["tuned"]
    tuned.retrieval = retr_valid
    grid = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    vproto = {"name": "retriever", "stage": "valid", "retriever": "fused",
              "max_users": args.valid_users}
    valid_scores = {}
    for w in grid:
        r = evaluate(TargetListedOnly(tuned.with_weight(w, f"tuned-w{w:g}"), split), split,
                     vproto, retriever=retr_valid, label=f"tuned-w{w:g}")
        valid_scores[w] = r.summary["ndcg@10"].mean
    best_w = max(valid_scores, key=lambda w: valid_scores[w])
    results["blend_valid_ndcg@10"] = valid_scores
    results["blend_weight"] = best_w
    tuned.retrieval = retr
    res["tuned-blend/retriever"] = evaluate(
        TargetListedOnly(tuned.with_weight(best_w, "tuned-blend"), split), split, rtop,
        retriever=retr, label="tuned-blend")
    results["results"] = {k: _summ(v) for k, v in res.items()}
    comps = {"tuned vs zero-shot (candidates)": ("tuned/candidates", "zero-shot/candidates"),
             "tuned vs zero-shot (retriever top-20)": ("tuned/retriever", "zero-shot/retriever"),
             "tuned reranker vs its retriever": ("tuned/retriever", None),
             "tuned+blend vs its retriever": ("tuned-blend/retriever", None),
             "zero-shot reranker vs its retriever": ("zero-shot/retriever", None)}
    results["paired"] = {}
    for name, (a, b) in comps.items():
        if a in res and (b is None or b in res):
            results["paired"][name] = _paired(res[a], full if b is None else res[b])
    write_json(out / "evaluate.json", results)
    log.info("wrote %s", out / "evaluate.json")


def cmd_crossdomain(args: argparse.Namespace) -> None:
    """ml-100k from the ml-latest-small adapter vs from scratch, same budget, then both
    final adapters on the test stage (20-candidate protocol) with a paired test."""
    from llmrank.finetune.config import load_recipe
    from llmrank.finetune.crossdomain import run_transfer

    overrides: dict[str, Any] = {"out": str(args.out / "crossdomain")}
    if args.steps:
        overrides["train.max_steps"] = args.steps
    recipe = load_recipe(args.recipe, overrides)
    transfer = run_transfer(recipe, args.from_adapter, resume=args.resume)
    summary = transfer.summary()
    data = prepared(recipe.data.dataset, recipe.data.kcore)
    proto = {"name": "candidates", "stage": "test", "max_users": args.users}
    ck = args.out / "crossdomain" / "checkpoints"
    test = {}
    for label, run in (("from-adapter", transfer.transferred), ("scratch", transfer.scratch)):
        test[label] = evaluate(_ranker(str(run.adapter_dir), f"ml100k-{label}",
                                       args.out / "crossdomain", None),
                               data.split, proto, label=label, ckpt=ck / label)
    summary["test"] = {k: _summ(v) for k, v in test.items()}
    summary["test_paired"] = _paired(test["from-adapter"], test["scratch"])
    write_json(args.out / "crossdomain.json", summary)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("stage", choices=["retrievers", "train", "evaluate", "crossdomain"])
    ap.add_argument("--dataset", default="ml-latest-small")
    ap.add_argument("--kcore", type=int, default=5)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--recipe", default="finetune/sft_ml_small.toml")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--adapter", default="eval/out/finetune/sft-ml-small/adapter")
    ap.add_argument("--from-adapter", default="ml-small-sft")
    ap.add_argument("--users", type=int, default=None, help="first N eval users (default all)")
    ap.add_argument("--valid-users", type=int, default=None, help="validation users for the blend weight")
    ap.add_argument("--cand-users", type=int, default=None, help="first N users, 20-candidate protocol")
    ap.add_argument("--skip-zero-shot", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    import torch

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    {"retrievers": cmd_retrievers, "train": cmd_train, "evaluate": cmd_evaluate,
     "crossdomain": cmd_crossdomain}[args.stage](args)
    log.info("%s done in %.0fs", args.stage, time.perf_counter() - start)


if __name__ == "__main__":
    main()
