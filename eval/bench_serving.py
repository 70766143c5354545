"""What the three doors cost on top of the Recommender itself, with the default models.

1. HTTP: per-request latency of POST /recommend on a real uvicorn server (loopback) against
   a direct ``Recommender.recommend`` call on the same requests (p50/p95 and their ratio).
2. Batch: throughput of the local engine (one process; a pool of ``--workers``) and of the
   Ray engine (``--workers`` actors, local mode) on the same request file, with the
   engine's start-up (worker processes / actors loading their own Recommender) included.

    python eval/bench_serving.py --requests 24 --workers 2
    # writes eval/out/serving/results.json
"""

from __future__ import annotations

import argparse
import json
import logging
import socket
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np


def _pct(xs: list[float]) -> dict[str, float]:
    a = np.asarray(xs) * 1000
    return {"p50_ms": round(float(np.percentile(a, 50)), 1), "p95_ms": round(float(np.percentile(a, 95)), 1)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bench_http(rec: Any, bodies: list[dict[str, Any]]) -> dict[str, Any]:
    import httpx
    import uvicorn

    from llmrank.records import RecRequest
    from llmrank.serve import create_app

    rec.recommend(RecRequest(**bodies[0]))  # warm-up: lazy initialisation is not per-request cost
    direct = []
    for b in bodies:
        t0 = time.perf_counter()
        rec.recommend(RecRequest(**b))
        direct.append(time.perf_counter() - t0)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(rec), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    http = []
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            for b in bodies:
                t0 = time.perf_counter()
                r = client.post("/recommend", json=b)
                http.append(time.perf_counter() - t0)
                r.raise_for_status()
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    d, h = _pct(direct), _pct(http)
    return {"direct": d, "http": h, "ratio_p50": round(h["p50_ms"] / d["p50_ms"], 3), "n": len(bodies)}


def bench_batch(config: dict[str, Any], rec: Any, src: Path, out_dir: Path, workers: int) -> dict[str, Any]:
    from llmrank.batch import run_batch

    runs: dict[str, Any] = {}
    plans: list[tuple[str, str, dict[str, Any]]] = [
        ("local-1 (shared Recommender)", "local", {"recommender": rec}),
        (f"local-{workers} workers", "local", {"config": config, "workers": workers, "batch_size": 4}),
        (f"ray-{workers} actors", "ray", {"config": config, "concurrency": workers, "batch_size": 4,
                                          "num_cpus": workers}),
    ]
    for name, engine, kwargs in plans:
        t0 = time.perf_counter()
        report = run_batch(src, out_dir / f"{engine}-{len(runs)}.jsonl", engine=engine, overwrite=True, **kwargs)
        wall = time.perf_counter() - t0
        runs[name] = {"done": report.done, "failed": len(report.failed), "seconds": round(wall, 1),
                      "requests_per_s": round(report.done / wall, 3)}
        logging.info("%s: %s", name, runs[name])
    return runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=24)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="eval/out/serving")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from llmrank.recommender import Recommender

    config: dict[str, Any] = {"seed": 0}  # defaults: catalog, MiniLM text index, SmolLM2 reranker
    rec = Recommender.from_config(config)
    users = rec.dataset.user_ids[: args.requests]
    bodies = [{"user_id": u, "k": 10, "request_id": f"bench-{u}"} for u in users]
    src = out / "requests.jsonl"
    src.write_text("".join(json.dumps(b) + "\n" for b in bodies))
    result = {"machine": "2-core shared CPU, no GPU", "reranker": rec.describe_reranker(),
              "http": bench_http(rec, bodies), "batch": bench_batch(config, rec, src, out, args.workers)}
    (out / "results.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
