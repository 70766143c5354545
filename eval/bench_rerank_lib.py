"""Shared pieces of the reranker benchmarks: data, users, and a zero-shot reranker Ranker for
the evaluation harness whose per-permutation scores are cached, so that '1 permutation' and
'3 permutations' are measured on the very same model outputs (permutation 0 is the given
order, exactly what a 1-permutation reranker scores)."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from llmrank.data.splits import LeaveOneOut
from llmrank.rerank.prompt import RankPromptBuilder
from llmrank.rerank.scorer import LabelScorer, RankInput, permutation

log = logging.getLogger(__name__)

USER_SALT = 6060  # the user-sample salt of bench_finetune_lib.sampled_split: same samples


def prepared(dataset: str = "ml-latest-small", kcore: int = 5) -> Any:
    """ml-latest-small 5-core (LlamaRec preprocessing), leave-one-out by timestamp."""
    from llmrank.eval.config import EvalData
    from llmrank.eval.data import prepare

    return prepare(EvalData(dataset=dataset, kcore=kcore))


def sample_users(split: LeaveOneOut, n: int | None, seed: int = 0) -> np.ndarray:
    """A fixed, seeded, sorted sample of ``n`` evaluable users (all when n is None or too
    large); nested (the first n of one seeded permutation), and the same sample as
    bench_finetune's ``--users n --user-seed seed``."""
    users = split.eval_users()
    if n is None or n >= len(users):
        return np.asarray(users)
    perm = np.random.default_rng([seed, USER_SALT]).permutation(users)
    return np.sort(perm[:n])


def sampled_split(split: LeaveOneOut, n: int | None, seed: int = 0) -> LeaveOneOut:
    """``split`` whose ``eval_users()`` is ``sample_users(split, n, seed)`` (the harness
    evaluates ``eval_users()``)."""
    import copy

    chosen = sample_users(split, n, seed)
    view = copy.copy(split)
    view.eval_users = lambda: chosen  # type: ignore[method-assign]
    return view


def candidate_lists(split: LeaveOneOut, users: np.ndarray, stage: str = "test",
                    seed: int = 0) -> np.ndarray:
    """The harness's 20-candidate lists (target + 19 seeded random negatives, shuffled):
    exactly what ``protocol.name = 'candidates'`` evaluates with this seed."""
    from llmrank.eval.config import EvalProtocol
    from llmrank.eval.protocols import ProtocolContext, candidate_matrix

    ctx = ProtocolContext(split, EvalProtocol(name="candidates", stage=stage), seed)  # type: ignore[arg-type]
    return candidate_matrix(ctx, np.asarray(users))


def rank_input(split: LeaveOneOut, user: int, cands: np.ndarray, stage: str) -> RankInput:
    """The reranker's request for one user: visible history (oldest first) and candidates."""
    ds = split.dataset
    items = ds.items
    hist = [items[ds.item_ids[h]] for h in split.history(int(user), stage)]
    return RankInput(hist, [items[ds.item_ids[int(c)]] for c in cands], key=str(user))


class PermutationCache:
    """(stage, user, candidate codes, permutation) -> renormalised log-probs per candidate.

    A user's missing permutations 0..max_perm-1 are all scored in ONE backend call, so the
    backend's shared-prefix KV reuse computes the system prompt and history once for all of
    them; asking for 1 permutation therefore also fills the cache for 3. Rows are appended
    to ``path`` (JSON lines) after every call: a killed run resumes without model calls."""

    def __init__(self, llm: Any, builder: RankPromptBuilder, *, seed: int = 0, max_perm: int = 3,
                 path: Path | None = None) -> None:
        self.scorer = LabelScorer(llm, builder, permutations=1, seed=seed)
        self.seed = seed
        self.max_perm = max_perm
        self.path = path
        self.rows: dict[tuple[str, int, tuple[int, ...], int], np.ndarray] = {}
        self.perms: dict[tuple[str, int, tuple[int, ...], int], np.ndarray] = {}
        self.user_seconds: list[float] = []  # wall time per newly scored user (all perms)
        self.prompt_tokens: list[int] = []
        if path is not None and path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                rec = json.loads(line)
                key = (rec["stage"], rec["user"], tuple(rec["cands"]), rec["perm"])
                self.rows[key] = np.asarray(rec["scores"], dtype=np.float64)
                self.perms[key] = np.asarray(rec["order"], dtype=np.int64)
            log.info("%d cached score rows from %s", len(self.rows), path)

    @staticmethod
    def _key(stage: str, user: int, cands: np.ndarray, p: int) -> tuple[str, int, tuple[int, ...], int]:
        return (stage, int(user), tuple(int(x) for x in cands), p)

    def fill(self, split: LeaveOneOut, stage: str, users: np.ndarray, cands: np.ndarray,
             n_perm: int) -> None:
        """Score every (user, permutation < max(n_perm, max_perm)) not in the cache."""
        todo, reqs = [], []
        for u, c in zip(users.tolist(), cands, strict=True):
            for p in range(max(n_perm, self.max_perm)):
                key = self._key(stage, u, c, p)
                if key in self.rows:
                    continue
                perm = permutation(len(c), p, self.seed, str(u))
                reqs.append(rank_input(split, int(u), c[perm], stage))
                todo.append((key, perm))
        if not reqs:
            return
        t = time.perf_counter()
        res = self.scorer.score(reqs)
        n_users = len({k[1] for k, _ in todo})
        self.user_seconds += [(time.perf_counter() - t) / n_users] * n_users
        lines = []
        for (key, perm), r in zip(todo, res, strict=True):
            per_cand = np.empty(len(perm))
            per_cand[perm] = r.scores
            self.rows[key], self.perms[key] = per_cand, perm
            self.prompt_tokens.append(r.prompt_tokens)
            lines.append(json.dumps({"stage": key[0], "user": key[1], "cands": list(key[2]),
                                     "perm": key[3], "order": perm.tolist(),
                                     "scores": [round(float(x), 6) for x in per_cand]}))
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write("\n".join(lines) + "\n")

    def scores(self, split: LeaveOneOut, stage: str, users: np.ndarray, cands: np.ndarray,
               n_perm: int) -> np.ndarray:
        """Mean over permutations 0..n_perm-1 of the per-candidate scores."""
        self.fill(split, stage, users, cands, n_perm)
        out = np.zeros(cands.shape, dtype=np.float64)
        for row, (u, c) in enumerate(zip(users.tolist(), cands, strict=True)):
            for p in range(n_perm):
                out[row] += self.rows[self._key(stage, u, c, p)]
        return out / n_perm

    def presented_position_stats(self) -> dict[str, Any]:
        """Model-side position bias: over all cached prompts, how often each presented
        position (label A, B, ...) got the highest score, and its mean renormalised log-prob."""
        by_pos: list[np.ndarray] = []
        for key, per_cand in self.rows.items():
            by_pos.append(per_cand[self.perms[key]])  # presented position -> score
        if not by_pos:
            return {}
        width = max(len(x) for x in by_pos)
        mat = np.stack([x for x in by_pos if len(x) == width])
        top = np.bincount(mat.argmax(axis=1), minlength=width)
        ranks = np.argsort(np.argsort(-mat, axis=1), axis=1)  # 0 = ranked first
        pos = np.arange(width)
        rho = [float(np.corrcoef(pos, r)[0, 1]) for r in ranks]  # Spearman (no ties)
        return {"prompts": len(mat), "argmax_share": (top / len(mat)).round(4).tolist(),
                "mean_logprob": mat.mean(axis=0).round(4).tolist(),
                "spearman_position_vs_rank_mean": round(float(np.mean(rho)), 4)}


class ZeroShotRanker:
    """Eval-harness Ranker: the zero-shot reranker with ``n_perm`` averaged permutations."""

    def __init__(self, cache: PermutationCache, n_perm: int, name: str) -> None:
        self.cache = cache
        self.n_perm = n_perm
        self.name = name
        self.split: LeaveOneOut | None = None

    def fit(self, split: LeaveOneOut, stage: str) -> None:
        self.split = split

    def score(self, users: np.ndarray, candidates: np.ndarray | None, stage: str) -> np.ndarray:
        if candidates is None or self.split is None:
            raise ValueError("the reranker scores candidate lists only (after fit)")
        return self.cache.scores(self.split, stage, np.asarray(users), np.asarray(candidates), self.n_perm)


class ListedOnly:
    """Retriever top-N protocol: a user whose target is not among the N candidates scores 0
    on every accuracy metric whatever the order, so the model is not asked (zeros instead).
    Accuracy metrics are unchanged; the LLM calls drop by the retriever's miss rate."""

    def __init__(self, inner: Any, split: LeaveOneOut) -> None:
        self.inner = inner
        self.split = split
        self.name = inner.name

    def fit(self, split: LeaveOneOut, stage: str) -> None:
        self.split = split
        self.inner.fit(split, stage)

    def score(self, users: np.ndarray, candidates: np.ndarray | None, stage: str) -> np.ndarray:
        if candidates is None:
            raise ValueError("ListedOnly is for candidate protocols")
        targets = np.array([self.split.target(int(u), stage) for u in users])
        listed = (candidates == targets[:, None]).any(axis=1)
        out = np.zeros(candidates.shape, dtype=np.float64)
        if listed.any():
            out[listed] = self.inner.score(users[listed], candidates[listed], stage)
        return out


# ---- plots (eval/plots/rerank_*.png) from the quality runs' outputs --------------------
def _runs(out: Path) -> dict[str, list[dict[str, Any]]]:
    return {f.stem: [json.loads(x) for x in f.read_text(encoding="utf-8").splitlines()]
            for f in sorted((out / "runs").glob("*.jsonl"))}


def _ndcg10(rank: float | None) -> float:
    return 0.0 if rank is None or rank > 10 else float(1 / np.log2(rank + 1))


def _mean_ci(v: np.ndarray) -> tuple[float, float]:
    half = 1.96 * float(np.std(v, ddof=1)) / np.sqrt(len(v)) if len(v) > 1 else 0.0
    return float(np.mean(v)) if len(v) else float("nan"), half


def _color(label: str) -> str:
    return {"random": "tab:gray", "zero-shot-1perm": "tab:orange"}.get(
        label, "tab:green" if label.startswith("zero-shot") else "tab:blue")


def make_plots(root: Path, plots: Path, bin_width: int = 4) -> list[Path]:
    """rerank_position_bias.png (the model's preferred label; NDCG@10 by the target's
    position in the prompt) and rerank_permutations.png (NDCG@k by permutations)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made: list[Path] = []
    plots.mkdir(parents=True, exist_ok=True)
    cand = root / "candidates"
    if (cand / "summary.json").is_file():
        summ = json.loads((cand / "summary.json").read_text(encoding="utf-8"))
        runs = _runs(cand)
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
        mpb = summ.get("model_position_bias") or {}
        if mpb:
            share, lp = mpb["argmax_share"], mpb["mean_logprob"]
            ax1.bar([chr(65 + i) for i in range(len(lp))], [np.exp(x) for x in lp], color="tab:blue")
            ax1.axhline(1 / len(lp), color="k", ls="--", lw=1, label="uniform (1/20)")
            best = int(np.argmax(share))
            ax1.set_title(f"label probability by prompt position ({mpb['prompts']} prompts);\n"
                          f"ranked first: {chr(65 + best)} in {100 * share[best]:.0f}% of prompts", fontsize=9)
            ax1.set_ylabel("exp(mean renormalised log-prob)")
            ax1.legend(fontsize=8)
        labels = [k for k in runs if k == "random" or k.startswith("zero-shot")]
        for i, label in enumerate(labels):
            pos = np.array([r["target_position"] for r in runs[label]])
            val = np.array([_ndcg10(r["rank"]) for r in runs[label]])
            bins = sorted(set((pos // bin_width).tolist()))
            stats = [_mean_ci(val[pos // bin_width == b]) for b in bins]
            xs = np.array(bins) * bin_width + (bin_width + 1) / 2 + (i - 1) * 0.35
            ax2.errorbar(xs, [m for m, _ in stats], yerr=[h for _, h in stats], marker="o",
                         capsize=3, ls="-", label=label, color=_color(label))
        ax2.set_xlabel(f"target position in the prompt (1 = label A), bins of {bin_width}")
        ax2.set_ylabel("NDCG@10 (95% normal CI)")
        ax2.set_title(f"20-candidate protocol, {summ['user_sample']['n']} users", fontsize=9)
        ax2.legend(fontsize=8)
        ax2.grid(alpha=0.3)
        fig.suptitle("Zero-shot SmolLM2-135M reranker: position bias", fontsize=10)
        fig.tight_layout()
        made.append(plots / "rerank_position_bias.png")
        fig.savefig(made[-1], dpi=100)
        plt.close(fig)
    panels = [(p, json.loads((root / p / "summary.json").read_text(encoding="utf-8")))
              for p in ("candidates", "retriever") if (root / p / "summary.json").is_file()]
    if panels:
        fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.6), squeeze=False)
        for ax, (proto, summ) in zip(axes[0], panels, strict=True):
            res = summ["results"]
            key = "metrics_retrieved_users" if proto == "retriever" else "metrics"
            ks = ["ndcg@1", "ndcg@5", "ndcg@10", "ndcg@20"]
            labels = list(res)
            w = 0.8 / len(labels)
            for i, label in enumerate(labels):
                m = res[label][key]
                if not m:
                    continue
                means = [m[k]["mean"] for k in ks]
                err = [[m[k]["mean"] - m[k]["low"] for k in ks], [m[k]["high"] - m[k]["mean"] for k in ks]]
                ax.bar(np.arange(len(ks)) + (i - (len(labels) - 1) / 2) * w, means, w, yerr=err,
                       capsize=2, label=label, color=_color(label))
            ax.set_xticks(range(len(ks)), ks)
            n = next(iter(res.values()))[key]["ndcg@10"]["n"]
            what = "users whose target was retrieved" if proto == "retriever" else "users"
            ax.set_title(f"{proto} protocol: {n} {what}", fontsize=9)
            ax.set_ylabel("mean (95% bootstrap CI)")
            ax.legend(fontsize=7)
            ax.grid(alpha=0.3, axis="y")
        fig.suptitle("Zero-shot reranker: 1 vs 3 averaged permutations", fontsize=10)
        fig.tight_layout()
        made.append(plots / "rerank_permutations.png")
        fig.savefig(made[-1], dpi=100)
        plt.close(fig)
    return made


# ---- report: section-5 markdown tables from the JSON outputs (numbers never typed by hand)
def _ci(m: dict[str, Any] | None) -> str:
    return "n/a" if not m else f"{m['mean']:.4f} [{m['low']:.4f}, {m['high']:.4f}]"


def _pair(p: dict[str, Any] | None) -> str:
    if not p:
        return "n/a"
    return f"{p['diff']:+.4f} [{p['ci'][0]:+.4f}, {p['ci'][1]:+.4f}], p={p['p']:.3g} (n={p['n']})"


def report(root: Path, latency: Path) -> str:
    lines: list[str] = []
    lat_path = latency / "latency.json"
    if lat_path.is_file():
        d = json.loads(lat_path.read_text(encoding="utf-8"))
        t, g = d["tokens"], d["generate_parse"]
        lines += [f"Latency, {d['requests']} requests (users {d['users']}), {d['threads']} torch thread, "
                  f"{d['dtype']}, run {d['started']} - {d['finished']}:", "",
                  "| method | p50 s | p95 s | mean s | prompt tokens (mean) | tokens run (mean) |",
                  "|---|---|---|---|---|---|",
                  f"| one-pass label scoring, 1 permutation | {d['onepass_s']['p50']:.2f} | {d['onepass_s']['p95']:.2f} | "
                  f"{d['onepass_s']['mean']:.2f} | {t['onepass_prompt']['mean']:.0f} | {t['onepass_prompt']['mean']:.0f} |",
                  f"| one-pass label scoring, 3 permutations (KV reuse) | {d['perm3_s']['p50']:.2f} | {d['perm3_s']['p95']:.2f} | "
                  f"{d['perm3_s']['mean']:.2f} | {t['perm3_prompt_total']['mean']:.0f} (3 prompts) | "
                  f"{t['perm3_positions_run']['mean']:.0f} ({100 * t['perm3_share_run']:.0f}%) |",
                  f"| generate the ranked list (greedy, <= {d['max_new_tokens']} new tokens) | {d['generate_s']['p50']:.2f} | "
                  f"{d['generate_s']['p95']:.2f} | {d['generate_s']['mean']:.2f} | {t['generate_prompt']['mean']:.0f} | "
                  f"prefill + {t['generate_new']['mean']:.1f} decoded |", "",
                  f"Ratios (p50): generate / one-pass = {d['ratio_generate_over_onepass_p50']:.2f}x "
                  f"(median of per-request ratios {d['ratio_generate_over_onepass_per_request_median']:.2f}x); "
                  f"3 permutations / 1 = {d['ratio_perm3_over_onepass_p50']:.2f}x.", "",
                  f"Rates (medians): prefill {d.get('prefill_tokens_per_s_median', float('nan')):.0f} tokens/s, "
                  f"decode {d.get('decode_s_per_token_median_est', float('nan')):.3f} s per new token "
                  "(generation time minus its prefill at the one-pass rate).", "",
                  f"Generated lists: unusable (no candidate label at all) {100 * g['unusable_rate']:.0f}%, "
                  f"not a complete valid ranking {100 * g['incomplete_or_invalid_rate']:.0f}%, "
                  f"label outside the candidates {100 * g['outside_label_rate']:.0f}%, duplicates "
                  f"{100 * g['duplicate_rate']:.0f}%, hit the token cap {100 * g['hit_cap_rate']:.0f}%; "
                  f"mean valid labels per answer {g['mean_valid_labels']:.2f} of 20. "
                  f"NDCG@10 on these users: {d['ndcg10_on_these_users']}", ""]
    for proto in ("candidates", "retriever"):
        path = root / proto / "summary.json"
        if not path.is_file():
            continue
        s = json.loads(path.read_text(encoding="utf-8"))
        res = s["results"]
        lines += [f"{proto} protocol: {s['user_sample']['n']} users (seed {s['user_sample']['seed']}), "
                  f"{s['data']}; run {s['started']} - {s['finished']}; "
                  f"{s.get('seconds_per_user_newly_scored') or 0:.1f} s per user for all permutations "
                  f"({s['users_newly_scored']} users scored in this run), mean prompt "
                  f"{s.get('prompt_tokens_mean') or 0:.0f} tokens.", "",
                  "| ranker | NDCG@1 | NDCG@5 | NDCG@10 [95% CI] | NDCG@20 | Recall@10 | MRR@10 | invalid |",
                  "|---|---|---|---|---|---|---|---|"]
        for label, r in res.items():
            m = r["metrics"]
            lines.append(f"| {label} | {m['ndcg@1']['mean']:.4f} | {m['ndcg@5']['mean']:.4f} | {_ci(m['ndcg@10'])} | "
                         f"{m['ndcg@20']['mean']:.4f} | {m['recall@10']['mean']:.4f} | {m['mrr@10']['mean']:.4f} | "
                         f"{r['invalid_output_rate']:.3f} |")
        if proto == "retriever":
            lines += ["", f"Users whose target was retrieved ({100 * s['retrieved_rate']:.1f}%):", "",
                      "| ranker | NDCG@1 | NDCG@5 | NDCG@10 [95% CI] | NDCG@20 |", "|---|---|---|---|---|"]
            for label, r in res.items():
                m = r["metrics_retrieved_users"]
                lines.append(f"| {label} | {m['ndcg@1']['mean']:.4f} | {m['ndcg@5']['mean']:.4f} | "
                             f"{_ci(m['ndcg@10'])} | {m['ndcg@20']['mean']:.4f} |")
        lines += ["", "Paired tests (NDCG@10 difference a - b, 95% bootstrap CI, permutation p):", ""]
        for name, parts in s["paired"].items():
            for who, p in parts.items():
                lines.append(f"- {name} ({who.replace('_', ' ')}): {_pair(p.get('ndcg@10'))}")
        base = s.get("baselines_same_users") or {}
        if base:
            lines += ["", "Harness baselines on the same users (same candidate lists; NDCG@10): " + ", ".join(
                f"{k} {v['ndcg@10']:.4f}" for k, v in base.items())]
        mpb = s.get("model_position_bias") or {}
        if mpb:
            share = mpb["argmax_share"]
            top = sorted(range(len(share)), key=lambda i: -share[i])[:3]
            lines += ["", f"Model-side position bias over {mpb['prompts']} prompts: mean Spearman correlation "
                      f"of prompt position and rank {mpb.get('spearman_position_vs_rank_mean')}; "
                      f"mean renormalised log-prob at A..T {mpb['mean_logprob']}; label ranked first "
                      + ", ".join(f"{chr(65 + i)} {100 * share[i]:.0f}%" for i in top)
                      + f" (uniform {100 / len(share):.0f}%); share at A..T: {share}"]
        pb = res.get("zero-shot-1perm", {}).get("position_bias")
        if pb:
            lines += [f"NDCG@10 of the 1-permutation reranker by target position in the prompt (1 = A; "
                      f"positions {[p + 1 for p in pb['positions']]}): "
                      f"{[round(x, 3) for x in pb['means']]} (counts {pb['counts']})"]
        lines.append("")
    return "\n".join(lines)
