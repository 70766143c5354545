"""An LLM prior that carries signal: the default model's familiarity with each title
(``llmrank.llm.familiarity``), as a zero-shot ranker and as the exploration policies' prior.

1. Ranking: familiarity alone (the same score for every user) under the 20-candidate protocol
   of ml-latest-small 5-core (test split, all users), next to random and most-popular, through
   the evaluation harness (bootstrap CIs, paired tests).
2. Replay: the section-7 replay (eval/simulate/<dataset>.toml: 100 item-kNN candidates, k=10,
   20,000 requests) with the pool scored by familiarity instead of the kNN score
   (``itemknn>familiarity``): Thompson sampling with that LLM prior against the same bandit
   started flat, and LinUCB with and without the prior feature, paired on the same requests.
3. ``--pool catalog``: the same replay with no retriever at all (a platform with no model
   trained on its log yet): every unseen item is a candidate, and the prior is the LLM's
   familiarity, or the warm-up popularity counts (``--prior popularity``, the non-LLM
   reference), or nothing (the flat arms). ``--item-vectors text`` gives the linear bandit
   text-embedding vectors instead of the warm-up SVD (a platform with no log at all).
4. ``--model``: another LLM's familiarity (e.g. the offline Qwen2.5-Coder-1.5B, imported with
   ``llmrank models import-gguf``); ``--ranking-dataset/--ranking-kcore`` move the ranking
   check to another catalog (ml-100k with k-core 0 shares the replay's familiarity cache).

    PYTHONPATH=. nice -n 5 python eval/simulate/familiarity_prior.py --datasets ml-100k,ml-latest-small
    PYTHONPATH=. nice -n 5 python eval/simulate/familiarity_prior.py --skip-ranking --datasets ml-100k \
        --pool catalog --out eval/out/familiarity_prior_catalog
    PYTHONPATH=. nice -n 5 python eval/simulate/familiarity_prior.py --skip-ranking --datasets ml-100k \
        --pool catalog --prior popularity --out eval/out/popularity_prior_catalog
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from llmrank.explore.report import bootstrap_mean_ci, markdown, summarize, write_report
from llmrank.explore.simulate import PriorConfig, load_simulate_config, simulate

HERE = Path(__file__).resolve().parent
log = logging.getLogger("familiarity_prior")
POLICIES = ["greedy", "thompson", "thompson-flat", "linucb", "linucb-flat"]
PAIRS = [("thompson", "thompson-flat"), ("linucb", "linucb-flat"), ("thompson", "greedy")]


class FamiliarityRanker:
    """Eval-harness Ranker: every user gets the items' familiarity scores."""

    name = "llm-familiarity"

    def __init__(self, llm: Any, cache_dir: Path) -> None:
        self.llm, self.cache_dir = llm, cache_dir

    def fit(self, split: Any, stage: str) -> None:
        from llmrank.explore.priors import FamiliarityPrior

        prior = FamiliarityPrior(llm=self.llm, cache_dir=str(self.cache_dir))
        prior.fit(split.dataset, [])
        self.scores = prior.scores

    def score(self, users: np.ndarray, candidates: np.ndarray | None, stage: str) -> np.ndarray:
        if candidates is None:
            return np.tile(self.scores, (len(users), 1))
        return self.scores[np.asarray(candidates)]


def ranking(llm: Any, cache: Path, out: Path, dataset: str = "ml-latest-small", kcore: int = 5,
            data_dir: str | None = None, other: Any = None) -> dict[str, Any]:
    """Familiarity as a zero-shot ranker under the 20-candidate protocol; ``other`` (a second
    LLM) adds its familiarity as a row, paired against the first."""
    from llmrank.eval.config import EvalData, EvalProtocol
    from llmrank.eval.data import prepare
    from llmrank.eval.results import compare
    from llmrank.eval.runner import evaluate_ranker
    from llmrank.registry import rankers

    data = prepare(EvalData(dataset=dataset, kcore=kcore, **({"data_dir": data_dir} if data_dir else {})))
    proto = EvalProtocol(name="candidates", stage="test")
    familiarity = FamiliarityRanker(llm, cache)
    other_ranker = FamiliarityRanker(other, cache) if other is not None else None
    res = {}
    for label, ranker in (("random", rankers.get("random")(seed=0)),
                          ("most-popular", rankers.get("most-popular")()),
                          ("llm-familiarity", familiarity),
                          *((("other-llm-familiarity", other_ranker),) if other_ranker else ())):
        res[label] = evaluate_ranker(ranker, data.split, proto, seed=0, label=label, fit=True)
    summary: dict[str, Any] = {"data": data.describe(), "protocol": "20 candidates (19 random negatives), test"}
    for label, r in res.items():
        summary[label] = {k: r.summary[k] for k in ("ndcg@10", "recall@10", "mrr@10")}
    from scipy.stats import spearmanr

    split = data.split
    counts = np.bincount(np.concatenate([split.history(int(u), "test") for u in range(split.dataset.n_users)]),
                         minlength=split.dataset.n_items)
    summary["spearman_familiarity_vs_train_popularity"] = float(spearmanr(familiarity.scores, counts).statistic)
    if other_ranker is not None:
        summary["spearman_other_familiarity_vs_train_popularity"] = float(
            spearmanr(other_ranker.scores, counts).statistic)
    pairs = [("llm-familiarity", "random"), ("llm-familiarity", "most-popular")]
    for a, b in pairs + ([("llm-familiarity", "other-llm-familiarity")] if other_ranker else []):
        summary[f"{a} vs {b}"] = {k: v.to_dict() for k, v in compare(res[a], res[b], seed=0).items()}
    (out / "ranking.json").write_text(json.dumps(summary, indent=1, default=str) + "\n", encoding="utf-8")
    return summary


def paired(result: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for a, b in PAIRS:
        d = result.traces[a].hits.astype(np.float64) - result.traces[b].hits.astype(np.float64)
        tenth, half = max(1, len(d) // 10), len(d) // 2
        out[f"{a} - {b}"] = {name: [float(d[sl].mean()), *bootstrap_mean_ci(d[sl], result.users[sl])]
                             for name, sl in (("all", slice(None)), ("first 10%", slice(None, tenth)),
                                              ("last 50%", slice(half, None)))}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", default=str(HERE.parents[2] / "shared" / "datasets"))
    ap.add_argument("--datasets", default="ml-100k,ml-latest-small")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model", default="default",
                    help="the LLM whose familiarity is the prior (a name under $LLMRANK_HOME/models, HF id or path)")
    ap.add_argument("--out", type=Path, default=Path("eval/out/familiarity_prior"))
    ap.add_argument("--skip-ranking", action="store_true")
    ap.add_argument("--ranking-dataset", default="ml-latest-small",
                    help="data of the 20-candidate ranking check (its k-core: --ranking-kcore)")
    ap.add_argument("--ranking-kcore", type=int, default=5)
    ap.add_argument("--compare-model", default=None,
                    help="a second LLM whose familiarity is ranked beside --model's, paired")
    ap.add_argument("--pool", choices=["knn", "catalog"], default="knn",
                    help="candidates: the item-kNN top-n of the config, or every unseen item")
    ap.add_argument("--prior", choices=["familiarity", "popularity"], default="familiarity",
                    help="with --pool catalog: the LLM's familiarity or the warm-up popularity")
    ap.add_argument("--item-vectors", choices=["interactions", "text"], default="interactions",
                    help="the linear bandit's item vectors: warm-up SVD, or text embeddings (no log)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    from llmrank.llm.transformers_backend import TransformersLLM

    args.out.mkdir(parents=True, exist_ok=True)
    cache = Path("eval/out/familiarity_prior/cache")  # one catalog pass per dataset and model
    llm = TransformersLLM(args.model, threads=args.threads)
    if not args.skip_ranking:
        log.info("ranking:\n%s", json.dumps(ranking(
            llm, cache, args.out, args.ranking_dataset, args.ranking_kcore, args.data_dir,
            TransformersLLM(args.compare_model, threads=args.threads) if args.compare_model else None), indent=1, default=str))
    for name in filter(None, args.datasets.split(",")):
        cfg = load_simulate_config(HERE / f"{name}.toml")
        cfg.data.data_dir = args.data_dir
        cfg.replay["item_vectors"] = args.item_vectors
        if args.pool == "catalog":
            cfg.replay["n_candidates"] = 10**9  # every unseen item (the replay clips to the catalog)
            cfg.prior = (PriorConfig(kind="popularity") if args.prior == "popularity" else
                         PriorConfig(kind="familiarity", options={"llm": llm, "cache_dir": str(cache)}))
        else:
            cfg.prior = PriorConfig(kind="itemknn>familiarity",
                                    options={**cfg.prior.options, "n": cfg.replay_config().n_candidates,
                                             "llm": llm, "cache_dir": str(cache)})
        started = time.time()
        result = simulate(cfg, policies=POLICIES, steps=args.steps)
        summary = summarize(result)
        write_report(summary, args.out / name, result=result)
        pairs = paired(result)
        (args.out / name / "paired.json").write_text(json.dumps(pairs, indent=1) + "\n", encoding="utf-8")
        log.info("%s done in %.0fs\n%s\n%s", name, time.time() - started, markdown(summary),
                 json.dumps(pairs, indent=1))


if __name__ == "__main__":
    main()
