"""Training on real data (slow: minutes on 2 CPU cores). ml-latest-small, LlamaRec 5-core,
full-ranking leave-one-out; thresholds sit well below eval/RESULTS.md section 4's numbers
but far above popularity (about 0.02 NDCG@10 there) so a broken model cannot pass."""

from __future__ import annotations

import numpy as np
import pytest

from llmrank.data.splits import LeaveOneOut, kcore
from llmrank.retrieve.sequential.config import SequentialConfig
from llmrank.retrieve.sequential.evaluate import split_ranks, summarize

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def split(ml_small):
    ds = kcore(ml_small, 5)
    assert (ds.n_users, ds.n_items, len(ds.interactions)) == (610, 3650, 90274)
    return LeaveOneOut.from_dataset(ds)


@pytest.fixture(scope="module")
def lru(split):
    from llmrank.retrieve.sequential.train import train_sequential

    return train_sequential(split, SequentialConfig(model="lru", epochs=15, patience=4))


def test_lru_reaches_sequential_model_quality(split, lru):
    test = summarize(split_ranks(lru.model.scores, split, "test"))
    assert test["ndcg@10"] > 0.05 and test["recall@10"] > 0.09


def test_fused_is_not_worse_on_warm_items(split, lru, monkeypatch, tmp_path):
    from llmrank.baselines.retriever import visible_dataset
    from llmrank.config import load_config
    from llmrank.eval.metrics import rank_of
    from llmrank.retrieve.fused import FusedRetriever
    from llmrank.retrieve.sequential.retriever import SequentialRetriever

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("LLMRANK_HOME", str(tmp_path))
    cfg = load_config({"embedder": {"backend": "hashing"}})
    seq = SequentialRetriever.from_model(lru.model, split.dataset.items, cfg)
    fused = FusedRetriever.build(visible_dataset(split, "test"), cfg, model=lru.model)
    ids = split.dataset.item_ids
    users = split.eval_users()
    hists = [[ids[c] for c in split.history(int(u), "test")] for u in users]
    targets = [ids[split.target(int(u), "test")] for u in users]
    ndcg = {}
    for name, r in (("seq", seq), ("fused", fused)):
        ranks = np.array([rank_of([c.item_id for c in row], t)
                          for row, t in zip(r.retrieve_many(hists, k=10), targets, strict=True)])
        ndcg[name] = float(np.mean(np.where(ranks <= 10, 1 / np.log2(ranks + 1), 0)))
    assert ndcg["fused"] >= ndcg["seq"] - 0.01
