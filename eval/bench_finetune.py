"""Benchmark of the fine-tuned reranker (eval/RESULTS.md section 6).

On ml-latest-small (5-core, LlamaRec preprocessing), SmolLM2-135M-Instruct zero-shot vs
LoRA-tuned under the 20-candidate protocol and the retriever top-20 protocol (fused
retriever), and the full pipeline (fused retriever + tuned reranker) under full-ranking
leave-one-out. Stages run one at a time (the machine is shared) and each writes under
``--out``; evaluations checkpoint per shard and resume.

    nice -n 10 python eval/bench_finetune.py retrievers
    nice -n 10 python eval/bench_finetune.py train --recipe finetune/sft_ml_small.toml
    nice -n 10 python eval/bench_finetune.py evaluate --adapter eval/out/finetune/sft-ml-small/adapter \
        [--users N --cand-users N --valid-users N --parts tuned-retriever,tuned-candidates,...]
    nice -n 10 python eval/bench_finetune.py crossdomain --from-adapter ml-small-sft --steps 25 --users 60
    python eval/bench_finetune.py report      # markdown tables from the JSON outputs

The retriever-candidates recipe (training and validation on the retriever top-20 protocol):

    nice -n 10 python eval/bench_finetune.py train --recipe finetune/sft_ml_small_retrieved.toml
    nice -n 10 python eval/bench_finetune.py evaluate --recipe finetune/sft_ml_small_retrieved.toml \
        --adapter eval/out/finetune/sft-ml-small-retrieved/adapter --eval-file evaluate_retrieved.json \
        --valid-users 300 --parts tuned-retriever,blend,zero-shot-retriever
    python eval/bench_finetune.py report --recipe finetune/sft_ml_small_retrieved.toml \
        --run-dir eval/out/finetune/sft-ml-small-retrieved --eval-file evaluate_retrieved.json
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_finetune_lib import (
    OUT,
    TargetListedOnly,
    adapter_tag,
    build_retrievers,
    evaluate,
    paired_dict,
    per_user,
    plot_validation,
    prepared,
    report,
    retrieved_validation_reference,
    retriever_dir,
    retriever_ranker,
    sampled_split,
    write_json,
)

log = logging.getLogger("bench_finetune")


def cmd_retrievers(args: argparse.Namespace) -> None:
    from llmrank.cli.common import parse_key_values

    data = prepared(args.dataset, args.kcore)
    seconds = build_retrievers(data, args.out, overrides=parse_key_values(args.set))
    write_json(args.out / "retrievers" / "build.json", {"seconds": seconds})


def cmd_train(args: argparse.Namespace) -> None:
    from llmrank.finetune.config import load_recipe
    from llmrank.finetune.sft import train_sft

    overrides: dict[str, Any] = {"examples.retriever_path": str(retriever_dir(args.out, "valid"))}
    if args.steps:
        overrides["train.max_steps"] = args.steps
    from llmrank.cli.common import parse_key_values

    overrides.update(parse_key_values(args.set))
    recipe = load_recipe(args.recipe, overrides)
    result = train_sft(recipe, resume=args.resume)
    write_json(args.out / f"train_{recipe.name}.json", result.summary())


def _model_tag(model: str) -> str:
    """'' for the default model, else a file-name-safe tag (caches and checkpoints of two
    base models never mix)."""
    return "" if model == "default" else re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(model).name) + "-"


def _spec_tag(prompt: Any) -> str:
    """A short digest of the prompt settings, for cache file names."""
    import dataclasses
    import hashlib

    spec = dataclasses.asdict(prompt) if dataclasses.is_dataclass(prompt) else prompt
    return hashlib.sha1(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:8]


def _ranker(adapter: str | None, label: str, out: Path, prompt: Any,
            model: str = "default") -> Any:
    from llmrank.finetune.evaluate import RerankRanker

    # the base model scores the same whatever the label: one cache for every zero-shot use
    # under the same prompt settings (a cache refuses rows made under other settings)
    name = f"zero-shot-{_spec_tag(prompt)}" if adapter is None else label
    cache = out / "cache" / f"{_model_tag(model)}{name}-{adapter_tag(adapter)}.jsonl"
    return RerankRanker(model, adapter, name=label, prompt=prompt, batch_size=4,
                        cache_path=cache)


def _summ(res: Any) -> dict[str, Any]:
    d = res.to_dict()
    return {"n_users": d["n_users"], "metrics": {k: d["metrics"][k] for k in
            ("ndcg@1", "ndcg@5", "ndcg@10", "ndcg@20", "recall@5", "recall@10", "recall@20",
             "mrr@10") if k in d["metrics"]},
            "retrieved_rate": d["retrieved_rate"], "score_seconds": d["score_seconds"],
            "retrieved_users": {k: v for k, v in d["metrics_retrieved_users"].items()
                                if k in ("ndcg@5", "ndcg@10", "recall@5", "recall@10", "mrr@10")}}


_METRICS = ("ndcg@10", "recall@10", "ndcg@5", "mrr@10")


def _paired(a: Any, b: Any, mask: Any = None, seed: int = 0) -> dict[str, Any]:
    """Paired permutation test of ``a`` vs ``b`` (same users), optionally on a user mask."""
    if list(a.outcome.users) != list(b.outcome.users):
        raise ValueError("paired test over different users")
    out = {}
    for m in _METRICS:
        x, y = per_user(a, m), per_user(b, m)
        if mask is not None:
            x, y = x[mask], y[mask]
        out[m] = paired_dict(x, y, seed)
    return out


def _prompt_spec(adapter: str | None, recipe: str) -> Any:
    """The adapter's prompt settings (manifest); an adapter without one (e.g. the training
    run's ``best`` folder) and the base model are read with the recipe's settings."""
    from llmrank.errors import ModelError
    from llmrank.finetune.artifacts import read_manifest
    from llmrank.finetune.config import load_recipe

    if adapter is None:
        return load_recipe(recipe).prompt
    try:
        return read_manifest(adapter).prompt_spec()
    except ModelError:
        log.warning("%s has no manifest: prompt settings from %s", adapter, recipe)
        return load_recipe(recipe).prompt


PARTS = ("retriever", "tuned-retriever", "tuned-candidates", "zero-shot-candidates", "blend",
         "zero-shot-retriever")


def cmd_evaluate(args: argparse.Namespace) -> None:
    """Zero-shot vs tuned under the 20-candidate and retriever top-20 protocols (test stage,
    seeded user samples), the retriever alone under full ranking, and the blend weight of the
    retriever's scores chosen on validation users. Parts run in ``--parts`` order (most
    important first) and ``--eval-file`` (evaluate.json) is rewritten after each, so a cut-off run still
    leaves every finished number; a rerun resumes from the score caches and checkpoints.

    Full pipeline (retriever -> top 20 -> reranker) under full-ranking leave-one-out: its
    first 20 positions ARE the reranked top 20, so at every K <= 20 its metrics equal the
    retriever protocol's over all users (a target outside the 20 scores 0 in both). The
    paired test 'pipeline vs retriever' compares those with the retriever's own full ranking
    on the same users."""
    data = prepared(args.dataset, args.kcore)
    split, out = data.split, args.out
    rroot = args.retriever_root or out
    adapter = None if args.adapter.lower() == "none" else args.adapter
    spec = _prompt_spec(adapter, args.recipe)
    tag = adapter_tag(adapter)
    retr = retriever_ranker(rroot, "valid")
    retr.fit(split, "test")
    rsplit = sampled_split(split, args.users, args.user_seed)
    csplit = sampled_split(split, args.cand_users, args.user_seed)
    vsplit = sampled_split(split, args.valid_users, args.user_seed)
    cand = {"name": "candidates", "stage": "test"}
    rtop = {"name": "retriever", "stage": "test", "retriever": "fused"}
    results: dict[str, Any] = {
        "prompt": spec.__dict__, "model": args.model, "adapter": adapter, "adapter_tag": tag,
        "data": data.describe(), "user_seed": args.user_seed,
        "n_users": {"retriever_protocol_and_full": len(rsplit.eval_users()),
                    "candidates": len(csplit.eval_users()), "valid_blend": len(vsplit.eval_users())},
        "command": " ".join(sys.argv), "parts": {}}
    ck = out / "checkpoints"
    res: dict[str, Any] = {}
    tuned = _ranker(adapter, "tuned", out, spec, args.model)
    # with --adapter none both are the base model: one instance, so the scores one part
    # computes are in memory for the next (two instances would each read the cache file once)
    zero = tuned if adapter is None else _ranker(None, "zero-shot", out, spec, args.model)

    def save() -> None:
        results["results"] = {k: _summ(v) for k, v in res.items()}
        paired: dict[str, Any] = {}
        full = res.get("retriever/full")
        for name, a, b in (("tuned vs zero-shot (candidates)", "tuned/candidates", "zero-shot/candidates"),
                           ("tuned vs zero-shot (retriever top-20)", "tuned/retriever", "zero-shot/retriever"),
                           ("pipeline (tuned) vs its retriever", "tuned/retriever", "retriever/full"),
                           ("pipeline (tuned+blend) vs its retriever", "tuned-blend/retriever", "retriever/full"),
                           ("pipeline (zero-shot) vs its retriever", "zero-shot/retriever", "retriever/full"),
                           ("tuned+blend vs tuned (retriever top-20)", "tuned-blend/retriever", "tuned/retriever")):
            if a in res and b in res:
                paired[name] = {"all_users": _paired(res[a], res[b])}
                if "candidates" not in a:
                    mask = np.asarray(res[a].outcome.retrieved, dtype=bool)
                    paired[name]["retrieved_users"] = _paired(res[a], res[b], mask)
        if full is not None and "tuned/retriever" in res:
            results["pipeline_full_ranking"] = {
                k: _summ(res[k])["metrics"] for k in ("tuned/retriever", "tuned-blend/retriever",
                                                      "zero-shot/retriever") if k in res}
        results["paired"] = paired
        write_json(out / args.eval_file, results)

    def part(name: str, fn: Any) -> None:
        t = time.perf_counter()
        scored = fn()
        sec = time.perf_counter() - t
        results["parts"][name] = {"seconds": round(sec, 1), "prompts_scored": scored,
                                  "seconds_per_prompt": round(sec / scored, 2) if scored else None}
        log.info("part %s: %.0fs, %s prompts scored", name, sec, scored)
        save()

    def run_retriever() -> int:
        res["retriever/full"] = evaluate(retr, rsplit, {"name": "full", "stage": "test"},
                                         label="fused-retriever", ckpt=ck / "retriever-full")
        return 0

    def run_rtop(label: str, ranker: Any) -> int:
        wrapped = TargetListedOnly(ranker, split)
        res[f"{label}/retriever"] = evaluate(wrapped, rsplit, rtop, retriever=retr, label=label,
                                             ckpt=ck / f"{label}-retriever", tag=ranker_tag(label))
        return wrapped.scored

    def run_cand(label: str, ranker: Any) -> int:
        res[f"{label}/candidates"] = evaluate(ranker, csplit, cand, label=label,
                                              ckpt=ck / f"{label}-candidates", tag=ranker_tag(label))
        return len(csplit.eval_users())

    def ranker_tag(label: str) -> str:
        base = f"{_model_tag(args.model)}{tag if label.startswith('tuned') else 'base'}"
        return f"{base}|{spec.__dict__}"

    def run_blend() -> int:
        # weight of the production blend with the retriever's scores, chosen on validation users
        retr_valid = retriever_ranker(rroot, "valid")
        retr_valid.fit(split, "valid")
        tuned.retrieval = retr_valid
        vproto = {"name": "retriever", "stage": "valid", "retriever": "fused"}
        valid_scores, scored = {}, 0
        for w in [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]:
            wrapped = TargetListedOnly(tuned.with_weight(w, f"tuned-w{w:g}"), split)
            r = evaluate(wrapped, vsplit, vproto, retriever=retr_valid, label=f"tuned-w{w:g}")
            valid_scores[w] = r.summary["ndcg@10"].mean
            scored = max(scored, wrapped.scored)
        best_w = max(valid_scores, key=lambda w: valid_scores[w])
        results["blend_valid_ndcg@10"] = valid_scores
        results["blend_weight"] = best_w
        tuned.retrieval = retr
        blended = TargetListedOnly(tuned.with_weight(best_w, "tuned-blend"), split)
        res["tuned-blend/retriever"] = evaluate(blended, rsplit, rtop, retriever=retr,
                                                label="tuned-blend")
        return scored + blended.scored

    jobs = {"retriever": run_retriever,
            "tuned-retriever": lambda: run_rtop("tuned", tuned),
            "tuned-candidates": lambda: run_cand("tuned", tuned),
            "zero-shot-candidates": lambda: run_cand("zero-shot", zero),
            "zero-shot-retriever": lambda: run_rtop("zero-shot", zero),
            "blend": run_blend}
    todo = [p.strip() for p in args.parts.split(",") if p.strip()]
    if "retriever" not in todo:
        todo.insert(0, "retriever")  # every paired test against the retriever needs it
    for name in todo:
        if name not in jobs:
            raise SystemExit(f"unknown part {name!r}; parts: {', '.join(PARTS)}")
        part(name, jobs[name])
    log.info("wrote %s", out / args.eval_file)


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
    proto = {"name": "candidates", "stage": "test"}
    users = sampled_split(data.split, args.users, args.user_seed)
    ck = args.out / "crossdomain" / "checkpoints"
    test = {}
    for label, run in (("from-adapter", transfer.transferred), ("scratch", transfer.scratch)):
        adapter = str(run.adapter_dir)
        test[label] = evaluate(_ranker(adapter, f"ml100k-{label}", args.out / "crossdomain",
                                       _prompt_spec(adapter, args.recipe)),
                               users, proto, label=label, ckpt=ck / label, tag=adapter_tag(adapter))
    summary["test"] = {k: _summ(v) for k, v in test.items()}
    summary["test_paired"] = _paired(test["from-adapter"], test["scratch"])
    write_json(args.out / "crossdomain.json", summary)


def cmd_report(args: argparse.Namespace) -> None:
    """Markdown tables for RESULTS.md section 6 from the JSON outputs, and the validation plot."""
    run_dir = Path(args.run_dir)
    print(report(args.out, run_dir, args.eval_file))
    if not (run_dir / "validation.jsonl").is_file():
        return  # no training run to plot (e.g. a zero-shot evaluation's report)
    reference = retrieved_validation_reference(args.recipe, args.out)
    if reference:  # a run validated on the retriever top-20 protocol: its own plot
        print(f"\nretriever order on the same validation sample: {json.dumps(reference)}")
        runs = {run_dir.name: run_dir, **{Path(d).name: Path(d) for d in args.compare}}
        png = plot_validation(runs,
                              Path(f"eval/plots/finetune_validation_{run_dir.name}.png"),
                              reference=("retriever order", reference["ndcg@10"]),
                              ylabel="valid NDCG@10 (retriever top 20)")
    else:
        runs = {"ml-latest-small SFT": run_dir}
        for label in ("from-adapter", "scratch"):
            runs[f"ml-100k {label}"] = args.out / "crossdomain" / label
        png = plot_validation(runs, Path("eval/plots/finetune_validation.png"))
    if png:
        print(f"\nplot: {png}")


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
    ap.add_argument("--adapter", default="eval/out/finetune/sft-ml-small/adapter",
                    help="evaluate: the adapter as 'tuned'; 'none' = the base model (zero-shot + blend)")
    ap.add_argument("--model", default="default",
                    help="evaluate: base model (name or path; with --adapter none a zero-shot model)")
    ap.add_argument("--from-adapter", default="ml-small-sft")
    ap.add_argument("--run-dir", default="eval/out/finetune/sft-ml-small", help="report: training run folder")
    ap.add_argument("--users", type=int, default=None,
                    help="seeded sample of N test users: retriever protocol and full ranking (default all)")
    ap.add_argument("--cand-users", type=int, default=None,
                    help="seeded sample of N test users, 20-candidate protocol (default all)")
    ap.add_argument("--valid-users", type=int, default=None,
                    help="seeded sample of N validation users for the blend weight (default all)")
    ap.add_argument("--user-seed", type=int, default=0, help="seed of the user samples")
    ap.add_argument("--parts", default=",".join(PARTS),
                    help=f"evaluate: parts to run, in order (of {', '.join(PARTS)})")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="train: recipe override, e.g. --set train.learning_rate=5e-5; retrievers: config "
                         "override, e.g. --set retriever.options.sequential={\"ensemble\": []} (repeatable)")
    ap.add_argument("--compare", action="append", default=[], metavar="RUN_DIR",
                    help="report: more training runs on the same retrieved validation sample to plot")
    ap.add_argument("--eval-file", default="evaluate.json",
                    help="evaluate: output JSON under --out; report: the one to read")
    ap.add_argument("--retriever-root", type=Path, default=None,
                    help="folder holding retrievers/ (default --out)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.stage == "report":
        cmd_report(args)
        return
    import torch

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    {"retrievers": cmd_retrievers, "train": cmd_train, "evaluate": cmd_evaluate,
     "crossdomain": cmd_crossdomain}[args.stage](args)
    log.info("%s done in %.0fs", args.stage, time.perf_counter() - start)


if __name__ == "__main__":
    main()
