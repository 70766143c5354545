"""Protocol sanity: random lands at chance, the oracle at 1.0, masking and candidates are
as the README specifies."""

from __future__ import annotations

import numpy as np
import pytest

from llmrank.baselines import OracleRanker, RandomRanker
from llmrank.data.splits import LeaveOneOut
from llmrank.eval.config import EvalProtocol
from llmrank.eval.protocols import ProtocolContext, candidate_matrix, evaluate_shard
from llmrank.eval.runner import evaluate_ranker
from llmrank.eval.synthetic import synthetic_dataset

# E[NDCG@10] of a random order of 20 candidates with one relevant: sum_{r<=10} 1/log2(r+1) / 20
CHANCE_NDCG10 = sum(1 / np.log2(r + 1) for r in range(1, 11)) / 20


def test_chance_constant():
    assert abs(CHANCE_NDCG10 - 0.2272) < 1e-4


def test_random_ranker_near_chance_on_20_candidates():
    ds = synthetic_dataset(n_users=2500, n_items=400, seed=1, min_len=3, max_len=8)
    split = LeaveOneOut.from_dataset(ds)
    res = evaluate_ranker(RandomRanker(seed=0), split, EvalProtocol(name="candidates"),
                          shard_size=500)
    assert res.n_users == 2500
    ci = res.summary["ndcg@10"]
    assert ci.mean == pytest.approx(CHANCE_NDCG10, abs=0.015)
    assert ci.low < CHANCE_NDCG10 < ci.high
    assert res.summary["recall@20"].mean == 1.0  # 20 candidates: the target is always in
    assert res.summary["recall@1"].mean == pytest.approx(1 / 20, abs=0.012)


@pytest.mark.parametrize("protocol", ["full", "candidates", "retriever"])
def test_oracle_is_perfect(synth_split, protocol):
    proto = EvalProtocol(name=protocol, retriever="oracle" if protocol == "retriever" else None)
    retriever = OracleRanker()
    retriever.fit(synth_split, "test")
    res = evaluate_ranker(OracleRanker(), synth_split, proto, retriever=retriever)
    assert {"ndcg@10", "recall@10", "mrr@10"} <= set(res.summary)  # the loop is not vacuous
    for name, ci in res.summary.items():
        assert ci.mean == 1.0, name


def test_candidates_are_target_plus_unseen_negatives(synth_split):
    proto = EvalProtocol(name="candidates", stage="valid")
    ctx = ProtocolContext(synth_split, proto, seed=5)
    users = synth_split.eval_users()[:30]
    cands = candidate_matrix(ctx, users)
    assert cands.shape == (30, 20)
    hists = synth_split.dataset.histories()
    positions = []
    for row, u in zip(cands, users, strict=True):
        target = synth_split.target(int(u), "valid")
        assert len(set(row.tolist())) == 20 and target in row
        negs = set(row.tolist()) - {target}
        assert not negs & set(hists[u].tolist())  # never-interacted items only
        positions.append(int(np.flatnonzero(row == target)[0]))
    assert len(set(positions)) > 5  # shuffled, not always in the same slot
    # deterministic per user, independent of the batch it is in
    again = candidate_matrix(ctx, users[::-1])[::-1]
    assert np.array_equal(cands, again)


class _HistoryLover:
    """Scores history items highest: the harness must mask them."""

    name = "history-lover"

    def fit(self, split, stage):
        self.split = split

    def score(self, users, candidates, stage):
        out = np.zeros((len(users), self.split.dataset.n_items))
        for i, u in enumerate(users):
            out[i, self.split.history(int(u), stage)] = 10.0
            out[i, self.split.target(int(u), stage)] = 1.0
        return out


def test_full_ranking_masks_history(synth_split):
    res = evaluate_ranker(_HistoryLover(), synth_split, EvalProtocol(name="full"))
    assert res.summary["ndcg@1"].mean == 1.0
    lists = res.outcome.lists
    for u, row in zip(res.outcome.users, lists, strict=True):
        assert not set(row.tolist()) & set(synth_split.history(int(u), "test").tolist())


def test_retriever_protocol_miss_and_subset(synth_split):
    """A random retriever's top-20 misses most targets; the oracle reranker then scores 1.0
    on retrieved users and the retrieved rate on all users."""
    retriever = RandomRanker(seed=1)
    retriever.fit(synth_split, "test")
    proto = EvalProtocol(name="retriever", retriever="random", n_retrieve=20)
    res = evaluate_ranker(OracleRanker(), synth_split, proto, retriever=retriever)
    rate = res.retrieved_rate
    assert 0 < rate < 0.5
    assert res.summary["recall@20"].mean == pytest.approx(rate)
    assert res.retrieved_summary["ndcg@10"].mean == 1.0
    assert (res.outcome.target_pos[res.outcome.retrieved] >= 0).all()


def test_shard_results_do_not_depend_on_batching(synth_split):
    ranker = RandomRanker(seed=2)
    ranker.fit(synth_split, "test")
    proto = EvalProtocol(name="candidates", ties="random")
    ctx = ProtocolContext(synth_split, proto, seed=0)
    users = synth_split.eval_users()[:40]
    whole = evaluate_shard(ranker, ctx, users)
    parts = [evaluate_shard(ranker, ctx, users[i: i + 7]) for i in range(0, 40, 7)]
    assert np.array_equal(whole.ranks, np.concatenate([p.ranks for p in parts]))


class _NaNRanker:
    """Leaves half the candidates unscored and reports one invalid output in three."""

    name = "flaky"

    def fit(self, split, stage):
        pass

    def score(self, users, candidates, stage):  # pragma: no cover - score_with_status used
        raise AssertionError

    def score_with_status(self, users, candidates, stage):
        from llmrank.eval.base import OutputStatus

        s = np.arange(candidates.shape[1], dtype=float)[None, :].repeat(len(users), 0)
        s[:, ::2] = np.nan
        st = OutputStatus.ok(len(users))
        st.invalid[::3] = True
        return s, st


def test_invalid_and_missing_outputs_are_reported(synth_split):
    res = evaluate_ranker(_NaNRanker(), synth_split, EvalProtocol(name="candidates"),
                          shard_size=1000)
    assert res.missing_rate == pytest.approx(0.5)
    n = res.n_users
    assert res.invalid_rate == pytest.approx(len(range(0, n, 3)) / n)
    assert res.position_bias is not None and len(res.position_bias.positions) > 10


class _ConstantRanker:
    """Scores every item 0; optionally orders its ties by given per-item tie scores."""

    name = "constant"

    def __init__(self, tie: np.ndarray | None = None) -> None:
        self.tie = tie

    def fit(self, split, stage):
        pass

    def score(self, users, candidates, stage):
        return np.zeros(candidates.shape)

    def tie_scores(self, users, candidates, stage):
        return None if self.tie is None else self.tie[candidates]


@pytest.mark.parametrize("ties,expect", [("pessimistic", 0.0), ("optimistic", 1.0)])
def test_tie_policy_decides_all_tied_candidates(synth_split, ties, expect):
    """A ranker that ties everything earns nothing under the pessimistic default (target
    last of 20) and everything under the optimistic policy: the harness never guesses."""
    res = evaluate_ranker(_ConstantRanker(), synth_split, EvalProtocol(name="candidates", ties=ties))
    assert res.summary["ndcg@10"].mean == expect
    assert res.outcome.ranks.tolist() == [20.0 if ties == "pessimistic" else 1.0] * res.n_users
    rand = evaluate_ranker(_ConstantRanker(), synth_split, EvalProtocol(name="candidates", ties="random"))
    assert 0.15 < rand.summary["ndcg@10"].mean < 0.32  # 120 users around chance (0.2272)


def test_ranker_tie_scores_order_ties_before_the_policy(synth_split):
    """The ranker's own tie scores come before the protocol's policy: tie scores that favour
    each user's target make an all-zero scorer perfect, even under pessimistic ties."""
    target_item = np.zeros(synth_split.dataset.n_items)
    users = synth_split.eval_users()
    proto = EvalProtocol(name="candidates", ties="pessimistic")
    ctx = ProtocolContext(synth_split, proto, seed=0)
    cands = candidate_matrix(ctx, users[:1])
    target_item[synth_split.target(int(users[0]), "test")] = 1.0
    res = evaluate_shard(_ConstantRanker(target_item), ctx, users[:1])
    assert res.ranks.tolist() == [1.0]
    assert res.lists[0, 0] == synth_split.target(int(users[0]), "test")
    assert set(res.lists[0].tolist()) == set(cands[0].tolist())


class _TiedRetriever:
    """Full-ranking retriever: 1.0 for the target and ``n_tied`` other unseen items (the
    highest codes, so item-code order never puts the target last), 0 for the rest."""

    name = "tied"

    def __init__(self, n_tied: int) -> None:
        self.n_tied = n_tied

    def fit(self, split, stage):
        self.split = split

    def tied(self, u: int, stage: str) -> np.ndarray:
        t = self.split.target(u, stage)
        seen = set(self.split.seen(u, stage).tolist()) | {t}
        others = [c for c in range(self.split.dataset.n_items - 1, -1, -1) if c not in seen]
        return np.array([t, *others[: self.n_tied]])

    def score(self, users, candidates, stage):
        out = np.zeros((len(users), self.split.dataset.n_items))
        for i, u in enumerate(users):
            out[i, self.tied(int(u), stage)] = 1.0
        return out


def _retrieve(split, retriever, n, ties="pessimistic"):
    from llmrank.eval.protocols import retrieved_matrix

    retriever.fit(split, "test")
    proto = EvalProtocol(name="retriever", retriever=retriever.name, n_retrieve=n, ties=ties)
    users = split.eval_users()[:30]
    return users, retrieved_matrix(ProtocolContext(split, proto, 0, retriever), users)


@pytest.mark.parametrize("ties", ["pessimistic", "optimistic"])
def test_retrieved_list_order_does_not_reveal_the_target(synth_split, ties):
    """Tied retrieved items are listed in item-code order whatever the tie policy: before,
    the pessimistic policy listed the target last among them (a free hint to the reranker)."""
    retr = _TiedRetriever(4)
    users, lists = _retrieve(synth_split, retr, 5, ties)
    for u, row in zip(users, lists, strict=True):
        assert row.tolist() == sorted(retr.tied(int(u), "test").tolist())
    targets = [synth_split.target(int(u), "test") for u in users]
    assert {row.tolist().index(t) for row, t in zip(lists, targets, strict=True)} != {4}


@pytest.mark.parametrize("ties,inside", [("pessimistic", False), ("optimistic", True)])
def test_tie_policy_decides_a_target_tied_at_the_cut(synth_split, ties, inside):
    """Target tied with 5 others for 5 places: the policy decides whether it is retrieved."""
    users, lists = _retrieve(synth_split, _TiedRetriever(5), 5, ties)
    targets = np.array([synth_split.target(int(u), "test") for u in users])
    assert ((lists == targets[:, None]).any(axis=1) == inside).all()
    assert (np.diff(lists, axis=1) > 0).all()  # still item-code order


class _ShortRetriever(_TiedRetriever):
    """Scores only the target and two other items (the rest -inf): a top-5 list is padded."""

    def score(self, users, candidates, stage):
        out = np.full((len(users), self.split.dataset.n_items), -np.inf)
        for i, u in enumerate(users):
            out[i, self.tied(int(u), stage)[:3]] = [3.0, 2.0, 1.0]
        return out


class _RealItemsOnly:
    """Reranker that refuses stand-ins: every candidate it is shown must be a real item."""

    name = "strict"

    def fit(self, split, stage):
        self.seen_shapes = []

    def score(self, users, candidates, stage):
        assert (candidates >= 0).all()
        self.seen_shapes.append(candidates.shape)
        return -candidates.astype(float)

    def tie_scores(self, users, candidates, stage):
        assert (candidates >= 0).all()
        return None


def test_padding_is_never_shown_to_the_ranker(synth_split):
    """Padding (-1) used to reach the ranker as item code 0; it must not reach it at all."""
    retr = _ShortRetriever(2)
    retr.fit(synth_split, "test")
    proto = EvalProtocol(name="retriever", retriever="tied", n_retrieve=5)
    ranker = _RealItemsOnly()
    res = evaluate_ranker(ranker, synth_split, proto, retriever=retr)
    assert {shape[1] for shape in ranker.seen_shapes} == {3}
    assert res.retrieved_rate == 1.0 and (res.outcome.n_candidates == 3).all()
    assert (res.outcome.lists[:, 3:] == -1).all()


def test_unscored_target_ranks_last_in_a_candidate_list(synth_split):
    class NaNTarget:
        name = "nan-target"

        def fit(self, split, stage):
            self.split = split

        def score(self, users, cands, stage):
            t = np.array([self.split.target(int(u), stage) for u in users])
            return np.where(cands == t[:, None], np.nan, 1.0)

    res = evaluate_ranker(NaNTarget(), synth_split, EvalProtocol(name="candidates"))
    assert (res.outcome.ranks == 20).all() and res.missing_rate == pytest.approx(1 / 20)
