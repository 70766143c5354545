"""Explanation benchmark: how often the default model's explanations pass validation, why the
others fall back to the template sentence, and what one explanation costs on this machine.

Real users of ml-latest-small (5-core, LlamaRec preprocessing): each sampled user's visible
history at the test stage, and the first ``--items`` of their 20-candidate list (the test
target plus seeded random negatives, as the harness builds it) as the items shown; all 20
candidates may be named. The model's raw outputs are kept, then validated twice: with the
catalog's genre vocabulary (what the recommender does) and without it (titles, years and
what the user is said to have seen, but no genre claims), so the effect of the genre-claim
check is measured on the very same generations.

    PYTHONPATH=. nice -n 10 python eval/bench_explain.py --users 40 --items 5 \\
        --out eval/out/bench_explain
    # re-validate the saved generations with the current validator (no model is loaded)
    PYTHONPATH=. python eval/bench_explain.py --rescore --out eval/out/bench_explain

Writes <out>/results.json (rates with 95% bootstrap CIs over users, reasons, timings, and two
grounding measures of the accepted model texts: the share naming a title from the user's
history, and the share speaking to the user as "you") and <out>/samples.jsonl (every
generation with both verdicts)."""

from __future__ import annotations

import argparse
import json
import logging
import platform
import re
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_rerank_lib import candidate_lists, prepared, rank_input, sample_users

from llmrank.explain.validate import normalize_text, strip_year

log = logging.getLogger("bench_explain")


class RecordingLLM:
    """Passes every call to ``llm`` and keeps what ``generate`` returned, so the same outputs
    can be validated again under other rules."""

    def __init__(self, llm: Any) -> None:
        self.llm = llm
        self.outputs: list[str] = []
        self.seconds: list[float] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.llm, name)

    def generate(self, prompts: list[str], config: Any) -> list[str]:
        t0 = time.perf_counter()
        out = self.llm.generate(prompts, config)
        self.seconds.append((time.perf_counter() - t0) / max(1, len(prompts)))
        self.outputs.extend(out)
        return out


def reason_kind(reason: str) -> str:
    """'names an unknown item 'X'' -> 'names an unknown item' (the category, not the text)."""
    for sep in (" (", " '", ' "'):
        reason = reason.split(sep)[0]
    return reason or "accepted"


def user_rate(flags: list[list[bool]], rng: np.random.Generator, n_boot: int = 2000) -> dict[str, float]:
    """Mean of per-user shares with a 95% bootstrap CI over users (users without any flag
    are left out)."""
    shares = np.array([np.mean(f) for f in flags if f])
    if not len(shares):
        return {"mean": float("nan"), "low": float("nan"), "high": float("nan")}
    boots = rng.choice(shares, size=(n_boot, len(shares))).mean(axis=1)
    return {"mean": round(float(shares.mean()), 4), "low": round(float(np.quantile(boots, 0.025)), 4),
            "high": round(float(np.quantile(boots, 0.975)), 4)}


def names_history(text: str, history: list[Any]) -> bool:
    """Whether ``text`` names a title (year optional) from the user's history."""
    norm = f" {normalize_text(text)} "
    return any(f" {normalize_text(strip_year(h.title))} " in norm for h in history if h.title)


def second_person(text: str) -> bool:
    return bool(set(normalize_text(text).split()) & {"you", "your", "you re", "you ve"})


def versus(samples: list[dict[str, Any]], other: Path) -> dict[str, Any]:
    """Paired permutation test (and bootstrap CI) of the per-user accepted share against the
    run in ``other``, matched on (user, item)."""
    from llmrank.eval.stats import paired_test

    theirs = {(r["user"], r["item"]): r["checked"] == "accepted" for r in
              map(json.loads, (other / "samples.jsonl").read_text(encoding="utf-8").splitlines())}
    mine: dict[str, list[float]] = {}
    base: dict[str, list[float]] = {}
    for s in samples:
        mine.setdefault(s["user"], []).append(float(s["checked"] == "accepted"))
        base.setdefault(s["user"], []).append(float(theirs[(s["user"], s["item"])]))
    users = sorted(mine)
    res = paired_test(np.array([np.mean(mine[u]) for u in users]), np.array([np.mean(base[u]) for u in users]))
    return {"other": str(other), "diff": round(res.diff, 4), "low": round(res.diff_ci.low, 4),
            "high": round(res.diff_ci.high, 4), "p_value": round(res.p_value, 4), "users": res.n}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="ml-latest-small")
    ap.add_argument("--kcore", type=int, default=5)
    ap.add_argument("--users", type=int, default=40)
    ap.add_argument("--items", type=int, default=5, help="items explained per user")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--set", dest="sets", action="append", default=[],
                    help="config override KEY=VALUE (e.g. explain.template=explain@1.0.0)")
    ap.add_argument("--rescore", action="store_true",
                    help="replay <out>/samples.jsonl through the current validator (same users, "
                         "items and settings as the run that wrote it, --set wins; no model)")
    ap.add_argument("--versus", type=Path, default=None,
                    help="another run's folder (same users and items): paired test of the "
                         "per-user share of model texts used, this run minus that one")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    from llmrank.cli.common import parse_key_values
    from llmrank.config import load_config
    from llmrank.explain.explainer import Explainer
    from llmrank.llm.fake import FakeLLM

    saved: dict[str, Any] = {}
    if args.rescore:  # the settings of the run that generated the outputs
        saved = json.loads((args.out / "results.json").read_text())["meta"]
        args.users, args.items = saved["users"], saved["items_per_user"]
        args.sets = args.sets or saved.get("sets", re.findall(r"--set (\S+)", saved["command"]))
        args.dataset = saved.get("dataset_arg", args.dataset)
        args.kcore, args.seed = saved.get("kcore", args.kcore), saved.get("seed", args.seed)
    cfg = load_config(None, parse_key_values(args.sets))
    split = prepared(args.dataset, args.kcore).split
    ds = split.dataset
    vocab = ds.genre_vocabulary()
    users = sample_users(split, args.users, args.seed)
    cands = candidate_lists(split, users, "test", args.seed)
    t0 = time.perf_counter()
    if args.rescore:
        lines = (args.out / "samples.jsonl").read_text(encoding="utf-8").splitlines()
        outputs = iter([json.loads(line)["output"] for line in lines])  # in call order
        llm: Any = RecordingLLM(FakeLLM(generations=lambda _prompt: next(outputs)))
    else:
        import torch

        from llmrank.rerank.reranker import create_llm

        torch.set_num_threads(args.threads)
        llm = RecordingLLM(create_llm(cfg.reranker))
    load_s = time.perf_counter() - t0
    template = cfg.explain.template
    checked = Explainer(llm, template, max_new_tokens=cfg.explain.max_new_tokens, vocabulary=vocab)
    samples, with_vocab, without_vocab, cites, you = [], [], [], [], []
    for n, (u, c) in enumerate(zip(users.tolist(), cands, strict=True)):
        inp = rank_input(split, u, c, "test")
        shown = inp.candidates[: args.items]
        start = len(llm.outputs)
        exps, _ = checked.explain(inp.history, shown, known=inp.candidates)
        raw = llm.outputs[start:]
        replay = Explainer(FakeLLM(generations=raw), template,
                           max_new_tokens=cfg.explain.max_new_tokens)  # no genre vocabulary
        plain, _ = replay.explain(inp.history, shown, known=inp.candidates)
        with_vocab.append([e.source == "model" for e in exps])
        without_vocab.append([e.source == "model" for e in plain])
        model_texts = [e.text for e in exps if e.source == "model"]
        cites.append([names_history(t, inp.history) for t in model_texts])
        you.append([second_person(t) for t in model_texts])
        for it, out, e, p in zip(shown, raw, exps, plain, strict=True):
            samples.append({"user": ds.user_ids[u], "item": it.item_id, "title": it.title,
                            "genres": list(it.genres), "output": out, "checked": e.rejected or "accepted",
                            "without_genre_check": p.rejected or "accepted", "shown": e.text})
        log.info("user %d/%d: %d of %d accepted", n + 1, len(users), sum(with_vocab[-1]), len(shown))
    rng = np.random.default_rng(args.seed)
    results: dict[str, Any] = {
        "accepted_with_genre_check": user_rate(with_vocab, rng),
        "accepted_without_genre_check": user_rate(without_vocab, rng),
        "accepted_naming_a_history_title": user_rate(cites, rng),
        "accepted_speaking_to_you": user_rate(you, rng),
        "reasons_with_genre_check": Counter(reason_kind(s["checked"]) for s in samples).most_common(),
        "reasons_without_genre_check": Counter(reason_kind(s["without_genre_check"]) for s in samples).most_common(),
        "rejected_only_by_genre_check": sum(s["checked"] != "accepted" and s["without_genre_check"] == "accepted"
                                            for s in samples),
        "explanations": len(samples),
    }
    if args.versus is not None:
        results["versus"] = versus(samples, args.versus)
    if args.rescore:
        old_results = json.loads((args.out / "results.json").read_text())["results"]
        for key in ("seconds_per_explanation_batched", "model_load_seconds"):
            if key in old_results:
                results[key] = old_results[key]
    else:
        secs = np.asarray(llm.seconds)
        results["seconds_per_explanation_batched"] = {
            "mean": round(float(secs.mean()), 3), "p50": round(float(np.median(secs)), 3),
            "p95": round(float(np.quantile(secs, 0.95)), 3)}
        results["model_load_seconds"] = round(load_s, 1)
    meta = {"dataset": ds.name, "dataset_arg": args.dataset, "kcore": args.kcore, "seed": args.seed,
            "users": len(users), "items_per_user": args.items, "sets": args.sets,
            "model": cfg.reranker.model, "backend": cfg.reranker.backend, "template": template,
            "max_new_tokens": cfg.explain.max_new_tokens, "genre_vocabulary": vocab,
            "command": "python " + " ".join(sys.argv), "machine": platform.platform(),
            "threads": args.threads, "rescored": args.rescore,
            "date": saved.get("date") or datetime.now(UTC).isoformat(timespec="seconds")}
    if args.rescore:
        meta["rescored_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        meta["command"] = saved.get("command", meta["command"])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    with (args.out / "samples.jsonl").open("w", encoding="utf-8") as fh:
        for s in samples:
            fh.write(json.dumps(s, ensure_ascii=False) + "\n")
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
