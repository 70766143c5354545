"""Benchmark of the behavioural (sequential) and fused retrievers, full-ranking leave-one-out
(LlamaRec protocol): test targets, every item the user has not interacted with is ranked,
retrieval goes through the retrievers' own FAISS index (top-100 per user).

    nice -n 10 python eval/bench_sequential.py --dataset ml-latest-small --kcore 5 \
        --model sasrec=eval/configs/sasrec_ce.json --model lru=eval/configs/lru.json \
        --fused lru --reference sasrec --out eval/out/sequential_ml-latest-small_5core

Writes <out>/results.json and <out>/table.md; trained models are cached in <out>/models/<name>
and reused when the config is unchanged (--retrain to force)."""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_sequential_lib import (
    DATA_ROOT,
    fmt,
    latency,
    load_split,
    paired,
    read_config,
    refit_or_load,
    retrieval_ranks,
    summarize,
    test_queries,
    train_or_load,
)

log = logging.getLogger("bench_sequential")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="ml-latest-small")
    ap.add_argument("--data-root", type=Path, default=DATA_ROOT)
    ap.add_argument("--kcore", type=int, default=5)
    ap.add_argument("--model", action="append", required=True, help="name=config.json")
    ap.add_argument("--refit", action="append", default=[],
                    help="model name: also a fresh model NAME-refit trained on train + valid "
                         "items for NAME's early-stopped epoch count (repeatable)")
    ap.add_argument("--ensemble", action="append", default=[],
                    help="NAME=A+B[@wA,wB]: score average of trained models (weights chosen "
                         "on validation by bench_sequential_ensemble.py; default equal)")
    ap.add_argument("--fused", action="append", default=[],
                    help="NAME or NAME@HALF_LIFE: fuse that model with text (repeatable). A "
                         "refit model reuses the blend tuned for its base (fused(base) first)")
    ap.add_argument("--reference", action="append", default=[],
                    help="retriever name for paired tests (repeatable; 'text' with --text)")
    ap.add_argument("--text", action="store_true",
                    help="also evaluate the text retriever (name 'text') on the same users")
    ap.add_argument("--half-life", type=float, default=None,
                    help="recency half-life of text query vectors (text and fused; default: "
                         "RetrieverConfig.recency_half_life, 10; NAME@HALF_LIFE overrides it)")
    ap.add_argument("--embedder", default="sentence-transformers")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--retrain", action="store_true")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--models-dir", type=Path, default=None,
                    help="cache of trained models (default <out>/models)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    import torch

    torch.set_num_threads(args.threads)
    from llmrank.baselines.retriever import visible_dataset
    from llmrank.config import load_config
    from llmrank.retrieve.fused import FusedRetriever
    from llmrank.retrieve.fusion import FusionConfig
    from llmrank.retrieve.sequential.retriever import SequentialRetriever

    args.out.mkdir(parents=True, exist_ok=True)
    ds, split = load_split(args.dataset, args.kcore, args.data_root)
    hists, targets = test_queries(split)
    overrides: dict = {"embedder": {"backend": args.embedder}}
    if args.half_life is not None:
        overrides["retriever"] = {"recency_half_life": args.half_life}
    cfg = load_config(overrides)
    results: dict[str, dict] = {}
    ranks: dict[str, np.ndarray] = {}
    retrievers: dict[str, object] = {}
    models_dir = args.models_dir or args.out / "models"
    specs = [(*spec.partition("=")[::2], None) for spec in args.model]
    for name, path, refit_of in specs + [(f"{m}-refit", "", m) for m in args.refit]:
        if refit_of:
            base_info = results[refit_of]["training"]
            path = results[refit_of]["config"]
            scfg = read_config(path, threads=args.threads)
            model, info = refit_or_load(split, scfg, models_dir / name, base_info["best_epoch"],
                                        args.retrain)
        else:
            scfg = read_config(path, threads=args.threads)
            model, info = train_or_load(split, scfg, models_dir / name, args.retrain)
        t0 = time.perf_counter()
        retr = SequentialRetriever.from_model(model, ds.items, cfg)
        index_s = time.perf_counter() - t0
        ranks[name], search_s = retrieval_ranks(retr, hists, targets)
        retrievers[name] = retr
        results[name] = {"kind": "sequential", "config": path, "training": {
            k: info[k] for k in ("best_epoch", "best_valid_ndcg10", "epochs_run", "train_seconds")},
            "index_seconds": round(index_s, 2), "eval_search_seconds": round(search_s, 2)}
        log.info("%s: test NDCG@10 %.4f", name, np.mean(np.where(ranks[name] <= 10,
                                                               1 / np.log2(ranks[name] + 1), 0)))
    for spec in args.ensemble:
        from llmrank.retrieve.sequential.ensemble import EnsembleModel

        name, _, rest = spec.partition("=")
        member_spec, _, weight_spec = rest.partition("@")
        members = member_spec.split("+")
        weights = [float(w) for w in weight_spec.split(",")] if weight_spec else None
        ens = EnsembleModel([retrievers[m].model for m in members],  # type: ignore[attr-defined]
                            weights)
        retr = SequentialRetriever.from_model(ens, ds.items, cfg)
        ranks[name], search_s = retrieval_ranks(retr, hists, targets)
        retrievers[name] = retr
        results[name] = {"kind": "ensemble", "members": members, "weights": ens.weights,
                         "eval_search_seconds": round(search_s, 2)}
    for spec in args.fused:
        base_name, _, hl = spec.partition("@")
        fcfg = cfg if not hl else cfg.model_copy(update={"retriever": cfg.retriever.model_copy(
            update={"recency_half_life": float(hl)})})
        name = f"fused({base_name})" if not hl else f"fused({base_name},hl={hl})"
        fusion = FusionConfig(half_life=fcfg.retriever.recency_half_life)
        if base_name.endswith("-refit"):  # the model saw the validation items: keep the blend
            tuned = results[name.replace(base_name, base_name.removesuffix("-refit"))]["fusion"]
            cold = tuned.get("cold", {})
            fusion = FusionConfig(kappa=tuned["kappa"], text_weight=tuned["text_weight"],
                                  ridge=tuned["ridge"], half_life=fusion.half_life,
                                  pseudo_cold=0.2 if cold.get("tuned") else 0.0,
                                  cold_scale=cold.get("scale"),
                                  cold_offset=cold.get("offset_spread_units"),
                                  cold_text_scale=cold.get("text_scale"))
        t0 = time.perf_counter()
        fused = FusedRetriever.build(visible_dataset(split, "test"), fcfg, fusion=fusion,
                                     model=retrievers[base_name].model)  # type: ignore[attr-defined]
        build_s = time.perf_counter() - t0
        ranks[name], search_s = retrieval_ranks(fused, hists, targets)
        retrievers[name] = fused
        results[name] = {"kind": "fused", "base": base_name, "fusion": fused.report,
                         "half_life": fcfg.retriever.recency_half_life,
                         "fusion_fixed_from_base": base_name.endswith("-refit"),
                         "build_seconds_excl_training": round(build_s, 1),
                         "eval_search_seconds": round(search_s, 2)}
    if args.text:
        from llmrank.retrieve.text import TextRetriever

        t0 = time.perf_counter()
        text = TextRetriever.build(visible_dataset(split, "test"), cfg)
        build_s = time.perf_counter() - t0
        ranks["text"], search_s = retrieval_ranks(text, hists, targets)
        retrievers["text"] = text
        results["text"] = {"kind": "text", "half_life": cfg.retriever.recency_half_life,
                           "build_seconds": round(build_s, 1),
                           "eval_search_seconds": round(search_s, 2)}
    for name, r in ranks.items():
        results[name]["metrics"] = summarize(r)
        results[name]["latency_single_query"] = latency(retrievers[name], hists)
        results[name]["users"] = len(r)
        for ref in args.reference:
            if name != ref and ref in ranks:
                results[name]["paired_vs_" + ref] = paired(r, ranks[ref])
        np.save(args.out / f"ranks_{name}.npy", r)
    meta = {"dataset": ds.name, "users": ds.n_users, "items": ds.n_items,
            "interactions": len(ds.interactions), "eval_users": len(hists),
            "protocol": "full ranking leave-one-out, test split, seen items excluded",
            "command": "python " + " ".join(sys.argv), "machine": platform.platform(),
            "date": datetime.now(UTC).isoformat(timespec="seconds"), "threads": args.threads,
            "recency_half_life": cfg.retriever.recency_half_life}
    (args.out / "results.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    (args.out / "table.md").write_text(markdown(meta, results, args.reference))
    print(markdown(meta, results, args.reference))


def markdown(meta: dict, results: dict, references: list[str]) -> str:
    cols = ["ndcg@10", "recall@10", "mrr@10", "ndcg@5", "recall@5", "ndcg@20", "recall@20",
            "mrr@20"]
    lines = [f"{meta['dataset']}: {meta['users']} users, {meta['items']} items, "
             f"{meta['interactions']} interactions; {meta['eval_users']} test users", "",
             "| retriever | " + " | ".join(c.replace("@", "@") for c in cols) + " |",
             "|---" * (len(cols) + 1) + "|"]
    for name, r in results.items():
        m = r["metrics"]
        lines.append(f"| {name} | " + " | ".join(fmt(m[c]) for c in cols) + " |")
    for reference in references:
        lines += ["", f"Paired permutation tests vs {reference} (diff [95% CI], p):", ""]
        for name, r in results.items():
            p = r.get("paired_vs_" + reference)
            if p:
                parts = [f"{m} {v['diff']:+.4f} [{v['diff_ci']['low']:+.4f}, "
                         f"{v['diff_ci']['high']:+.4f}] p={v['p_value']:.4f}" for m, v in p.items()]
                lines.append(f"- {name}: " + "; ".join(parts))
    lines += ["", "| retriever | train s | best epoch | search 1 query p50/p95 ms |", "|---|---|---|---|"]
    for name, r in results.items():
        t = r.get("training", {})
        lat = r["latency_single_query"]
        lines.append(f"| {name} | {t.get('train_seconds', '-')} | {t.get('best_epoch', '-')} | "
                     f"{lat['p50_ms']} / {lat['p95_ms']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
