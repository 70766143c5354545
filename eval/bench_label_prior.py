"""Is the small LLM at chance only because of its label-position prior? Removes a per-position
prior from cached label scores and re-measures NDCG@10, with no model call.

The prior is the mean renormalised log-prob of each label position over *other* users'
prompts (two folds over users, so a user's own answer never calibrates itself): the
"content-free" idea of Zhao et al. 2021 ("Calibrate before use") and the label-prior
estimate of PriDe (Zheng et al. 2024), which work when a model has content signal hidden
under a position preference. If the debiased ranking stays at chance, the model has no
content signal to uncover and calibration is not worth shipping.

Reads the score caches the benchmarks already wrote:
- ``eval/out/rerank_zeroshot/candidates/scores.jsonl`` (bench_rerank_quality: per user and
  permutation, ``cands``/``order``/``scores``; ml-latest-small 5-core, 20 candidates)
- ``eval/out/finetune_control*/cache/*.jsonl`` (bench_finetune_control: ``key`` =
  ``stage:user:candidates in prompt order``; the embedded catalog)

    PYTHONPATH=. python eval/bench_label_prior.py --out eval/out/label_prior.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

DEFAULT_CACHES = {
    "zero-shot, ml-latest-small 5-core, 20 candidates (perm 0)":
        ("ml-latest-small", "eval/out/rerank_zeroshot/candidates/scores.jsonl"),
    "zero-shot, catalog, 10 candidates": ("catalog", "eval/out/finetune_control/cache/zero-shot-genres.jsonl"),
    "tuned (sft-catalog-short), catalog, 10 candidates":
        ("catalog", "eval/out/finetune_control/cache/tuned-38351cfbc4.jsonl"),
    "zero-shot, catalog, 5 candidates": ("catalog", "eval/out/finetune_control_5cand/cache/zero-shot-genres.jsonl"),
    "tuned (sft-catalog-epochs, 3 passes), catalog, 5 candidates":
        ("catalog", "eval/out/finetune_control_5cand/cache/tuned-179292afca.jsonl"),
}


def split_for(dataset: str) -> Any:
    """The leave-one-out split each cache was scored on."""
    if dataset == "catalog":
        from llmrank.eval.config import EvalData
        from llmrank.eval.data import prepare

        return prepare(EvalData(dataset="catalog")).split
    from bench_rerank_lib import prepared  # type: ignore[import-not-found]

    return prepared().split


def load_prompts(path: Path, split: Any) -> tuple[np.ndarray, np.ndarray]:
    """(scores in prompt order, target's prompt position) per test user, first permutation."""
    scores, targets = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        if "settings" in rec:  # a RerankRanker cache's first line: what its scores depend on
            continue
        if "key" in rec:  # RerankRanker cache: the key lists the candidates in prompt order
            stage, user, cands = rec["key"].split(":")
            shown = [int(c) for c in cands.split(",")]
            s = np.asarray(rec["scores"], dtype=np.float64)
        else:  # PermutationCache: scores follow ``cands``; ``order`` is the prompt order
            if rec["perm"] != 0:
                continue
            stage, user = rec["stage"], rec["user"]
            shown = [rec["cands"][i] for i in rec["order"]]
            s = np.asarray(rec["scores"], dtype=np.float64)[rec["order"]]
        if stage != "test":
            continue
        scores.append(s)
        targets.append(shown.index(int(split.target(int(user), "test"))))
    return np.vstack(scores), np.asarray(targets)


def ndcg10(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Per-row NDCG@10 of the target column, the harness's definition (pessimistic ties)."""
    from llmrank.eval.metrics import metrics_from_ranks, target_ranks

    return metrics_from_ranks(target_ranks(scores, targets), ks=(10,), names=("ndcg",))["ndcg@10"]


def debias(scores: np.ndarray, folds: int = 2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Scores minus the position prior of the other folds; also the all-user prior (reported)."""
    fold = np.random.default_rng(seed).permutation(len(scores)) % folds
    out = np.empty_like(scores)
    for f in range(folds):
        out[fold == f] = scores[fold == f] - scores[fold != f].mean(axis=0)
    prior = scores.mean(axis=0)
    return out, prior - prior.max()


def paired_ci(d: np.ndarray) -> list[float]:
    from llmrank.eval.stats import bootstrap_ci

    ci = bootstrap_ci(d, seed=0, n_resamples=4000)
    return [round(ci.low, 4), round(ci.high, 4)]


def measure(scores: np.ndarray, targets: np.ndarray) -> dict[str, Any]:
    debiased, prior = debias(scores)
    raw, deb = ndcg10(scores, targets), ndcg10(debiased, targets)
    m = scores.shape[1]
    from llmrank.eval.metrics import metrics_from_ranks

    # the expectation under a random order: the target at each rank 1..m once
    chance = float(metrics_from_ranks(np.arange(1, m + 1), ks=(10,), names=("ndcg",))["ndcg@10"].mean())
    return {"users": len(scores), "candidates": m, "chance_ndcg@10": round(chance, 4),
            "raw_ndcg@10": round(float(raw.mean()), 4), "debiased_ndcg@10": round(float(deb.mean()), 4),
            "debiased_minus_raw": round(float((deb - raw).mean()), 4),
            "debiased_minus_raw_ci95": paired_ci(deb - raw),
            "debiased_minus_chance_ci95": paired_ci(deb - chance),
            "label_A_top_share_raw": round(float((scores.argmax(axis=1) == 0).mean()), 3),
            "label_A_top_share_debiased": round(float((debiased.argmax(axis=1) == 0).mean()), 3),
            "position_log_prior": [round(float(x), 2) for x in prior]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("eval/out/label_prior.json"))
    args = ap.parse_args()
    splits: dict[str, Any] = {}
    results: dict[str, Any] = {}
    for name, (dataset, path) in DEFAULT_CACHES.items():
        if not Path(path).is_file():
            print(f"skip {name}: {path} not found (run its benchmark first)")
            continue
        split = splits.setdefault(dataset, split_for(dataset))
        results[name] = {"cache": path, **measure(*load_prompts(Path(path), split))}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    print("| scores | users | chance | raw | debiased | debiased - raw [95% CI] | label A first: raw / debiased |")
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        lo, hi = r["debiased_minus_raw_ci95"]
        print(f"| {name} | {r['users']} | {r['chance_ndcg@10']:.4f} | {r['raw_ndcg@10']:.4f} | "
              f"{r['debiased_ndcg@10']:.4f} | {r['debiased_minus_raw']:+.4f} [{lo:+.4f}, {hi:+.4f}] | "
              f"{r['label_A_top_share_raw']:.2f} / {r['label_A_top_share_debiased']:.2f} |")


if __name__ == "__main__":
    main()
