"""Zero-shot reranker quality on ml-latest-small (5-core, LlamaRec preprocessing, test stage)
under the 20-candidate protocol and the retriever top-20 protocol, with 1 and 3 averaged
permutations, next to the random order, through the evaluation harness (bootstrap CIs,
paired tests, position bias, invalid-output rate).

Users: a fixed seeded sample (``--users N --user-seed S``, the same samples as
bench_finetune). 1 and 3 permutations are measured on the very same model outputs
(permutation 0 is the given order, which is what a 1-permutation reranker scores); all
permutations of a user are scored in one backend call (shared-prefix KV reuse) and cached
on disk, so a killed run resumes and a larger sample reuses a smaller one's scores.

    OMP_WAIT_POLICY=PASSIVE nice -n 10 python eval/bench_rerank_quality.py --protocol candidates --users 200
    OMP_WAIT_POLICY=PASSIVE nice -n 10 python eval/bench_rerank_quality.py --protocol retriever --users 610
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from bench_rerank_lib import (  # type: ignore[import-not-found]
    ListedOnly,
    PermutationCache,
    ZeroShotRanker,
    make_plots,
    prepared,
    report,
    sampled_split,
)

log = logging.getLogger("bench_rerank_quality")
METRICS = ("ndcg@1", "ndcg@5", "ndcg@10", "ndcg@20", "recall@10", "mrr@10")


def retriever_for(kind: str, root: Path) -> Any:
    """'fused': the saved valid-stage fused retriever of bench_finetune (section 6's);
    'text': the text-embedding retriever, built on the visible data in fit."""
    from llmrank.baselines.retriever import RetrieverRanker

    if kind == "fused":
        from llmrank.retrieve.store import load_retriever

        return RetrieverRanker("fused", k=100, retriever=load_retriever(root / "retrievers" / "valid"),
                               name="fused-retriever")
    return RetrieverRanker("text", k=100, name="text-retriever")


def baselines_on(users: list[str], run_dir: Path) -> dict[str, dict[str, float]]:
    """NDCG@10 etc. of the harness's baseline runs (same preprocessing, protocol and seed,
    so the same candidate lists) restricted to ``users`` (user ids)."""
    out: dict[str, dict[str, float]] = {}
    want = set(users)
    for f in sorted((run_dir / "runs").glob("*.jsonl")):
        ranks = {}
        for line in f.read_text(encoding="utf-8").splitlines():
            rec = json.loads(line)
            if rec["user"] in want:
                ranks[rec["user"]] = rec["rank"] if rec["rank"] is not None else np.inf
        if len(ranks) != len(want):
            continue
        r = np.array([ranks[u] for u in users], dtype=np.float64)
        out[f.stem] = {"ndcg@10": float(np.mean(np.where(r <= 10, 1 / np.log2(r + 1), 0.0))),
                       "ndcg@20": float(np.mean(np.where(r <= 20, 1 / np.log2(r + 1), 0.0))),
                       "ndcg@1": float(np.mean(r == 1)), "n": len(r)}
    return out


def paired(a: Any, b: Any, mask: np.ndarray | None = None) -> dict[str, Any]:
    from llmrank.eval.stats import paired_test

    res = {}
    for m in METRICS:
        x, y = a.per_user[m], b.per_user[m]
        if mask is not None:
            x, y = x[mask], y[mask]
        r = paired_test(x, y, seed=0)
        res[m] = {"a": r.mean_a, "b": r.mean_b, "diff": r.diff, "ci": [r.diff_ci.low, r.diff_ci.high],
                  "p": r.p_value, "n": r.n}
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--protocol", choices=["candidates", "retriever"], default="candidates")
    ap.add_argument("--users", type=int, default=200, help="seeded user sample (0 = all)")
    ap.add_argument("--user-seed", type=int, default=0)
    ap.add_argument("--perms", type=int, default=3, help="permutations of the averaged variant")
    ap.add_argument("--retriever", choices=["fused", "text"], default="fused")
    ap.add_argument("--retriever-root", type=Path, default=Path("eval/out/bench_finetune"))
    ap.add_argument("--baselines", type=Path, default=Path("eval/out/ml-small-5core-cand20"),
                    help="harness run of the baselines under the same 20-candidate protocol")
    ap.add_argument("--model", default="default")
    ap.add_argument("--backend", choices=["transformers", "fake"], default="transformers",
                    help="fake: the model-free test backend (a dry run of the pipeline)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--shard-size", type=int, default=8)
    ap.add_argument("--out", type=Path, default=Path("eval/out/rerank_zeroshot"))
    ap.add_argument("--plots", type=Path, default=Path("eval/plots"),
                    help="where rerank_position_bias.png / rerank_permutations.png go")
    ap.add_argument("--plots-only", action="store_true", help="only redraw the plots from --out")
    ap.add_argument("--report", action="store_true",
                    help="print the section-5 markdown from --out and eval/out/rerank_latency")
    args = ap.parse_args()
    if args.report:
        print(report(args.out, Path("eval/out/rerank_latency")))
        return
    if args.plots_only:
        print(make_plots(args.out, args.plots))
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    from llmrank.eval.config import EvalProtocol
    from llmrank.eval.plots import write_plots
    from llmrank.eval.report import write_metrics_json, write_run_jsonl
    from llmrank.eval.results import compare
    from llmrank.eval.runner import evaluate_ranker
    from llmrank.llm.transformers_backend import TransformersLLM
    from llmrank.registry import rankers as ranker_registry
    from llmrank.rerank.prompt import RankPromptBuilder

    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    data = prepared()
    split = sampled_split(data.split, args.users or None, args.user_seed)
    users = split.eval_users()
    out = args.out / args.protocol
    (out / "runs").mkdir(parents=True, exist_ok=True)
    if args.backend == "fake":
        from llmrank.llm.fake import FakeLLM

        llm: Any = FakeLLM()
        llm.path, llm.dtype, llm.threads = "fake", "none", 0
    else:
        llm = TransformersLLM(args.model, threads=args.threads)
    cache = PermutationCache(llm, RankPromptBuilder(llm), seed=0, max_perm=args.perms,
                             path=out / "scores.jsonl")
    p1, pn = "zero-shot-1perm", f"zero-shot-{args.perms}perm"
    proto: dict[str, Any] = {"name": args.protocol, "stage": "test"}
    retriever = None
    if args.protocol == "retriever":
        retriever = retriever_for(args.retriever, args.retriever_root)
        retriever.fit(split, "test")
        proto.update(retriever=retriever.name, n_retrieve=20)
    protocol = EvalProtocol(**proto)
    llm_rankers: dict[str, Any] = {p1: ZeroShotRanker(cache, 1, p1), pn: ZeroShotRanker(cache, args.perms, pn)}
    if retriever is not None:  # users whose target was not retrieved score 0 in any order
        llm_rankers = {k: ListedOnly(v, split) for k, v in llm_rankers.items()}
    todo: dict[str, Any] = {"random": ranker_registry.get("random")(seed=0)}
    if retriever is not None:
        todo[retriever.name] = retriever
    todo.update(llm_rankers)

    t_start = time.perf_counter()
    done = {"n": 0}

    def progress(n: int) -> None:
        done["n"] += n
        el = time.perf_counter() - t_start
        log.info("%d/%d users scored, %.0fs elapsed, %.1fs per newly scored user", done["n"],
                 len(users), el, float(np.mean(cache.user_seconds)) if cache.user_seconds else 0.0)

    results = {}
    for label, ranker in todo.items():
        done["n"] = 0
        results[label] = evaluate_ranker(ranker, split, protocol, seed=0, label=label,
                                         retriever=retriever, shard_size=args.shard_size, fit=True,
                                         progress=progress if label in llm_rankers else None)
        log.info("%s: ndcg@10 %s", label, results[label].summary["ndcg@10"])
    for label, res in results.items():
        if label != "random":
            res.paired = compare(res, results["random"], seed=0)

    ds = split.dataset
    targets = np.array([split.target(int(u), "test") for u in users])
    for res in results.values():
        write_run_jsonl(out / "runs" / f"{res.label}.jsonl", res, ds, targets)
    retrieved = results["random"].outcome.retrieved.astype(bool)
    pairs = {f"{pn} vs {p1}": {"all_users": paired(results[pn], results[p1])},
             f"{p1} vs random": {"all_users": paired(results[p1], results["random"])},
             f"{pn} vs random": {"all_users": paired(results[pn], results["random"])}}
    if retriever is not None:
        for name, (a, b) in {f"{pn} vs {p1}": (pn, p1), f"{p1} vs random": (p1, "random"),
                             f"{pn} vs random": (pn, "random"),
                             f"{p1} vs {retriever.name}": (p1, retriever.name),
                             f"{pn} vs {retriever.name}": (pn, retriever.name)}.items():
            pairs.setdefault(name, {})["retrieved_users"] = paired(results[a], results[b], retrieved)
    user_ids = [ds.user_ids[int(u)] for u in users]
    meta = {
        "name": f"rerank_zeroshot_{args.protocol}", "command": "python " + " ".join(sys.argv),
        "data": data.describe(), "user_sample": {"n": len(users), "seed": args.user_seed},
        "model": str(llm.path), "dtype": str(llm.dtype), "threads": llm.threads,
        "prompt": "rank template (prompts/rank.toml), default builder (20 history items, item text)",
        "started": started, "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_metrics_json(out / "metrics.json", list(results.values()), meta)
    write_plots(list(results.values()), out, f"zero-shot reranker, {args.protocol}, {len(users)} users")
    summary = {
        **meta,
        "results": {k: v.to_dict() for k, v in results.items()},
        "paired": pairs,
        "retrieved_rate": float(retrieved.mean()),
        "model_position_bias": cache.presented_position_stats(),
        "seconds_per_user_newly_scored": float(np.mean(cache.user_seconds)) if cache.user_seconds else None,
        "users_newly_scored": len(cache.user_seconds),
        "prompt_tokens_mean": float(np.mean(cache.prompt_tokens)) if cache.prompt_tokens else None,
        "baselines_same_users": baselines_on(user_ids, args.baselines) if args.protocol == "candidates" else {},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
    log.info("plots: %s", make_plots(args.out, args.plots))
    for k, v in results.items():
        log.info("%-22s ndcg@10 %s (retrieved users: %s) invalid %.3f", k, v.summary["ndcg@10"],
                 v.retrieved_summary.get("ndcg@10"), v.invalid_rate)


if __name__ == "__main__":
    main()
