"""Retrieval at growing catalog sizes: build time, memory, query latency and recall@10 of
each FAISS structure (flat / HNSW / IVF) on synthetic 384-d vectors, and which structure
``choose_kind`` picks at that size. Writes eval/out/bench_retrieval_scale/results.json and
eval/plots/retrieval_scale.png.

Synthetic data (``synthetic``) is calibrated on real all-MiniLM-L6-v2 item embeddings of
ml-latest-small: isotropic noise would be the worst case for any ANN index and unlike real
embeddings. ``--real FILE.npy`` adds a row on real vectors to check the calibration.
Single-query latency is measured with one FAISS thread: on an oversubscribed shared CPU,
OpenMP's spinning threads made two-thread single queries about 3x slower than one.

    PYTHONPATH=. nice -n 10 python eval/bench_retrieval_scale.py --sizes 10000 100000 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

from llmrank.index.faiss_index import FaissIndex
from llmrank.index.select import IndexParams, choose_kind

ROOT = Path(__file__).resolve().parent
OUT = ROOT / "out" / "bench_retrieval_scale"
PLOT = ROOT / "plots" / "retrieval_scale.png"
DIM = 384


def synthetic(n: int, seed: int, *, centres: int, latent: int = 128, spread: float = 1.5,
              mean_weight: float = 0.9, decay: float = 80.0, noise: float = 0.3) -> np.ndarray:
    """Unit vectors shaped like sentence embeddings: a clustered latent mixture with decaying
    variances (participation-ratio dimension ~80), a shared mean direction (mean cosine
    ~0.43) and a little isotropic noise; both match all-MiniLM-L6-v2 on ml-latest-small at
    10k items with 1,000 centres. Larger catalogs get proportionally more centres (about 10
    items per centre), the harder assumption for ANN: a catalog grows by adding topics, not
    by packing existing ones denser. Structure (projection, centres) is fixed by ``centres``;
    ``seed`` draws the points, so queries drawn with another seed share the distribution."""
    g = np.random.default_rng(42)
    basis = np.linalg.qr(g.standard_normal((DIM, latent + 1)))[0].T.astype(np.float32)
    mean_dir, proj = basis[0], basis[1:]
    scales = np.exp(-np.arange(latent) / decay).astype(np.float32)
    centre = g.standard_normal((centres, latent)).astype(np.float32) * spread
    rng = np.random.default_rng(seed)
    out = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        z = (centre[rng.integers(0, centres, m)] + rng.standard_normal((m, latent), dtype=np.float32)) * scales
        z /= np.linalg.norm(z, axis=1, keepdims=True)
        x = z @ proj + mean_weight * mean_dir
        x += rng.standard_normal((m, DIM), dtype=np.float32) * (noise / np.sqrt(DIM))
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out[start:start + m] = x
    return out


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def exact_truth(x: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    """Exact top-k ids by batched numpy (ground truth for recall)."""
    top = np.empty((len(q), k), dtype=np.int64)
    for start in range(0, len(q), 50):
        s = q[start:start + 50] @ x.T
        part = np.argpartition(-s, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(s, part, 1), axis=1)
        top[start:start + 50] = np.take_along_axis(part, order, 1)
    return top


def exact_latency(x: np.ndarray, q: np.ndarray, k: int) -> list[float]:
    """Seconds per single-query exact numpy search (the reference FAISS is compared with)."""
    secs: list[float] = []
    for row in q:
        t = time.perf_counter()
        s = x @ row
        part = np.argpartition(-s, k)[:k]
        part[np.argsort(-s[part])]
        secs.append(time.perf_counter() - t)
    return secs


def pct(values: list[float], p: float) -> float:
    return float(np.percentile(np.asarray(values) * 1000.0, p))


def measure(index: FaissIndex, q: np.ndarray, truth: np.ndarray, k: int,
            n_latency: int) -> dict[str, float]:
    """Recall@k of a batched search, single-query latency, and a filtered single query
    (100 excluded ids, keep-predicate passing ~10%)."""
    t = time.perf_counter()
    hits = index.search(q, k)
    batch = (time.perf_counter() - t) / len(q)
    recall = float(np.mean([len({int(i) for i, _ in h} & set(tr.tolist())) / k
                            for h, tr in zip(hits, truth, strict=True)]))
    lat: list[float] = []
    for row in q[:n_latency]:
        t = time.perf_counter()
        index.search(row[None, :], k)
        lat.append(time.perf_counter() - t)
    filt: list[float] = []
    rng = np.random.default_rng(1)
    n = len(index)
    for row in q[:min(n_latency, 30)]:
        excl = {str(i) for i in rng.integers(0, n, 100)}
        t = time.perf_counter()
        index.search(row[None, :], k, exclude=[excl], keep=lambda i: int(i) % 10 == 0)
        filt.append(time.perf_counter() - t)
    return {"recall@10": round(recall, 4), "p50_ms": round(pct(lat, 50), 3),
            "p95_ms": round(pct(lat, 95), 3), "batch_ms_per_query": round(batch * 1000, 4),
            "filtered_p50_ms": round(pct(filt, 50), 3)}


def sweep_values(kind: str, params: IndexParams) -> tuple[str, list[int]]:
    """The search parameter varied after the default: HNSW efSearch, IVF nprobe (absolute
    small values and fixed fractions of nlist, so every size sees the same fractions)."""
    if kind == "hnsw":
        return "ef_search", [32, 64, 96, 192]
    if kind == "ivf":
        nlist = int(params.nlist or 1)
        vals = {8, 16, *(max(1, nlist // d) for d in (64, 32, 16, 8))}
        return "nprobe", sorted(v for v in vals if v <= nlist)
    return "", []


def is_default(row: dict) -> bool:
    """Whether a row's search parameter is what IndexParams gives today at that size (so
    the plot and RESULTS follow the library's defaults, even after they are retuned)."""
    p = IndexParams()
    if row["kind"] == "ivf":
        return bool(row["params"]["nprobe"] == p.with_ivf_sizes(row["n"]).nprobe)
    if row["kind"] == "hnsw":
        return bool(row["params"]["ef_search"] == p.ef_search)
    return True


def bench_kind(kind: str, ids: list[str], x: np.ndarray, q: np.ndarray, truth: np.ndarray,
               k: int, n_latency: int) -> list[dict]:
    """Build once; measure at the default search parameter and along a sweep of it."""
    rss0 = rss_mb()
    t0 = time.perf_counter()
    index = FaissIndex.build(ids, x, kind=kind, use_gpu=False)
    build = time.perf_counter() - t0
    rss1 = rss_mb()
    with tempfile.TemporaryDirectory() as tmp:
        index.save(tmp)
        size_mb = (Path(tmp) / "index.faiss").stat().st_size / 2**20
    base = {"kind": kind, "build_s": round(build, 3), "index_mb": round(size_mb, 1),
            "rss_delta_mb": round(rss1 - rss0, 1)}
    default = index.params
    rows = [{**base, **measure(index, q, truth, k, n_latency), "default": True,
             "params": default.to_dict()}]
    field, values = sweep_values(kind, default)
    for value in values:
        if getattr(default, field) == value:
            continue
        index.params = replace(default, **{field: value})
        rows.append({**base, **measure(index, q, truth, k, n_latency), "default": False,
                     "params": index.params.to_dict()})
    del index
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--latency-queries", type=int, default=100)
    ap.add_argument("--kinds", nargs="+", default=["flat", "hnsw", "ivf"])
    ap.add_argument("--hnsw-max", type=int, default=300_000,
                    help="skip HNSW above this size (its build dominates on small CPUs)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--real", type=Path, default=None,
                    help="a .npy of real unit embeddings to compare with the synthetic data")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--fixed-centres", type=int, default=0,
                    help="use this many clusters at every size (easier data) instead of n/10")
    ap.add_argument("--plot", type=Path, default=PLOT)
    ap.add_argument("--replot", action="store_true", help="only redraw the plot from results.json")
    args = ap.parse_args()
    if args.replot:
        plot(json.loads((args.out / "results.json").read_text())["rows"], args.plot)
        return

    import faiss

    faiss.omp_set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    results_file = args.out / "results.json"
    rows: list[dict] = json.loads(results_file.read_text())["rows"] if results_file.is_file() else []
    k = 10
    jobs: list[tuple[str, int]] = [("synthetic", n) for n in args.sizes]
    if args.real is not None:
        jobs.insert(0, ("real", 0))
    for data, n in jobs:
        if data == "real":
            v = np.load(args.real).astype(np.float32)
            perm = np.random.default_rng(0).permutation(len(v))
            q, x = v[perm[:args.queries]], v[perm[args.queries:]]
            n = len(x)
            label = f"real:{args.real.name}"
        else:
            c = args.fixed_centres or max(1000, n // 10)
            x, q = synthetic(n, seed=0, centres=c), synthetic(args.queries, seed=1, centres=c)
            label = "synthetic"
        rows = [r for r in rows if not (r["n"] == n and r["data"] == label)]
        ids = [str(i) for i in range(n)]
        truth = exact_truth(x, q, k)
        exact = exact_latency(x, q[:args.latency_queries], k)
        print(f"{label} n={n}: exact numpy p50 {pct(exact, 50):.2f} ms", flush=True)
        for kind in args.kinds:
            if kind == "hnsw" and n > args.hnsw_max:
                continue
            for r in bench_kind(kind, ids, x, q, truth, k, args.latency_queries):
                r.update({"n": n, "data": label, "auto_kind": choose_kind(n),
                          "exact_numpy_p50_ms": round(pct(exact, 50), 3),
                          "exact_numpy_p95_ms": round(pct(exact, 95), 3)})
                print(json.dumps(r), flush=True)
                rows.append(r)
        del x
        results_file.write_text(json.dumps({
            "machine": f"{platform.node()} ({os.cpu_count()} cores, shared with other jobs), no GPU",
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "faiss": faiss.__version__, "threads": args.threads, "dim": DIM,
            "centres": args.fixed_centres or "n/10 (at least 1000)", "rows": rows,
        }, indent=2))
    plot(rows, args.plot)


def plot(rows: list[dict], path: Path = PLOT) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("build_s", "build time (s)"), ("index_mb", "index size (MB)"),
              ("p50_ms", "query latency p50 (ms, 1 query)"), ("recall@10", "recall@10 vs exact")]
    fig, axes = plt.subplots(1, 4, figsize=(17, 4))
    for ax, (key, label) in zip(axes, panels, strict=True):
        for kind in ("flat", "hnsw", "ivf"):
            pts = sorted((r["n"], r[key]) for r in rows
                         if r["kind"] == kind and is_default(r) and r["data"] == "synthetic")
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", label=kind)
        if key == "p50_ms":
            pts = sorted({(r["n"], r["exact_numpy_p50_ms"]) for r in rows if r["data"] == "synthetic"})
            ax.plot(*zip(*pts, strict=True), "k--", marker="x", label="exact numpy")
        ax.set_xscale("log")
        if key != "recall@10":
            ax.set_yscale("log")
        ax.set_xlabel("catalog size (items)")
        ax.set_title(label)
        ax.grid(alpha=0.3)
    axes[0].legend()
    axes[2].legend()
    fig.suptitle("FAISS structures on 384-d synthetic vectors (2-core shared CPU, no GPU)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
