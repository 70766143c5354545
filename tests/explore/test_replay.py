from __future__ import annotations

import numpy as np
import pytest

from llmrank.data.dataset import Dataset
from llmrank.explore.ope import evaluate, from_store, memoize, policy_target
from llmrank.explore.priors import ItemKNNPrior, PopularityPrior, RankerPrior
from llmrank.explore.replay import PolicySpec, ReplayConfig, replay
from llmrank.explore.report import gini, markdown, summarize, write_report
from llmrank.records import Item


def tiny_dataset(n_users: int = 40, n_items: int = 30, length: int = 10, seed: int = 0) -> Dataset:
    """Users walk a ring of items (j -> j+1 mostly): item-kNN learns the ring in the warm-up,
    so the prior is informative; time interleaves users."""
    rng = np.random.default_rng(seed)
    events = []
    for u in range(n_users):
        j = int(rng.integers(n_items))
        t0 = int(rng.integers(0, 1000))
        for s in range(length):
            events.append((f"u{u}", f"i{j}", t0 + 100 * s, 4.0))
            j = (j + (1 if rng.random() < 0.8 else int(rng.integers(2, 5)))) % n_items
    items = [Item(f"i{j}", title=f"Item {j}", genres=("even" if j % 2 == 0 else "odd",))
             for j in range(n_items)]
    return Dataset.from_records("tiny", items, [], events)


SPECS = [PolicySpec("greedy", "greedy"), PolicySpec("softmax", "softmax", {"temperature": 0.5}),
         PolicySpec("thompson", "thompson", {"prior_strength": 10.0}),
         PolicySpec("thompson-flat", "thompson", {"prior": "flat", "prior_strength": 10.0}),
         PolicySpec("linucb", "linucb", {"alpha": 0.1})]
CFG = ReplayConfig(k=3, n_candidates=10, warmup=0.4, embedding_dim=4, seed=0)


@pytest.fixture(scope="module")
def result():
    return replay(tiny_dataset(), SPECS, ItemKNNPrior(neighbors=10), CFG)


def test_replay_walks_time_and_scores_real_next_items(result):
    ds = tiny_dataset()
    res = result
    n_stream = len(ds.interactions) - round(0.4 * len(ds.interactions))
    assert res.steps == n_stream and set(res.traces) == {s.label for s in SPECS}
    assert np.all(np.diff(res.timestamps) >= 0)  # time order
    for tr in res.traces.values():
        assert len(tr.hits) == res.steps
        assert np.all(np.diff(tr.coverage) >= 0) and tr.coverage[-1] <= ds.n_items
        assert np.array_equal(tr.hits, tr.clicks > 0)  # lookahead 1: at most one click
        assert tr.clicks.max() <= 1
    greedy = res.traces["greedy"].hits.mean()
    # the ring makes the next item predictable: far above a random 3 of ~25 (0.12)
    assert greedy > 0.25
    assert res.traces["thompson"].hits.mean() > res.traces["thompson-flat"].hits.mean()


def test_replay_is_reproducible_and_lookahead_counts_more_clicks(result):
    again = replay(tiny_dataset(), SPECS, ItemKNNPrior(neighbors=10), CFG)
    for label in result.traces:
        assert np.array_equal(result.traces[label].hits, again.traces[label].hits)
        assert result.traces[label].shown == again.traces[label].shown
    cfg3 = ReplayConfig(**{**CFG.__dict__, "lookahead": 3, "max_steps": 100})
    c = replay(tiny_dataset(), SPECS[:1], ItemKNNPrior(neighbors=10), cfg3)
    assert c.steps == 100 and c.traces["greedy"].clicks.max() >= 2


def test_report_files_and_regret(result, tmp_path):
    summary = summarize(result)
    best = summary["best_fixed_policy"]
    assert summary["policies"][best]["regret_vs_best"] == 0
    assert all(r["regret_vs_best"] >= 0 for r in summary["policies"].values())
    lo, hi = summary["policies"]["greedy"]["hit_rate_ci"]
    assert lo <= summary["policies"]["greedy"]["hit_rate"] <= hi
    assert "hit_rate_vs_greedy" in summary["policies"]["softmax"]
    files = write_report(summary, tmp_path, result=result)
    arrays = np.load(tmp_path / "traces.npz")
    assert np.array_equal(arrays["hits/greedy"], result.traces["greedy"].hits)
    assert "hit_rate_last_50pct_vs_greedy_ci" in summary["policies"]["linucb"]
    for key in ("metrics", "markdown", "cumulative_hit_rate", "coverage", "regret_vs_best"):
        assert (tmp_path / files[key].split("/")[-1]).stat().st_size > 0
    assert "| greedy |" in markdown(summary)
    assert gini(np.array([1, 1, 1, 1])) == pytest.approx(0.0)
    assert gini(np.array([0, 0, 0, 8])) == pytest.approx(0.75)
    pop = replay(tiny_dataset(), SPECS[:1], PopularityPrior(), ReplayConfig(**{**CFG.__dict__, "max_steps": 50}))
    assert len(set(pop.traces["greedy"].shown)) <= 3 + 10  # one list for everyone (minus seen items)


def test_replay_logs_impressions_that_ope_can_read(tmp_path):
    from llmrank.explore import make_policy
    from llmrank.feedback.sqlite_store import SqliteFeedbackStore

    store = SqliteFeedbackStore(tmp_path / "fb.sqlite", synchronous="NORMAL")
    ds = tiny_dataset()
    res = replay(ds, [SPECS[1], SPECS[0]], ItemKNNPrior(neighbors=10),
                 ReplayConfig(**{**CFG.__dict__, "max_steps": 120}), log_to=store, log_label="softmax")
    rounds, skipped = from_store(store)
    assert len(rounds) == 120 and skipped == 0
    assert sum(bool(r.context.history) for r in rounds) > 100  # the replay's history is on record
    assert store.counts()["click"] == int(res.traces["softmax"].clicks.sum())
    # greedy is fixed, so its replayed value on the same requests is its true value there
    est = evaluate(rounds, memoize(policy_target(make_policy("greedy"))), estimators=("ips", "snips"),
                   n_boot=200)
    truth = res.traces["greedy"].clicks.mean()
    assert est["ips"].covers(truth) and est["snips"].covers(truth)


def test_ranker_prior_adapter_sees_the_live_history():
    class LastItemRanker:
        """Scores the item after the user's last one highest (reads the history at score time)."""

        name = "last"

        def fit(self, split, stage):
            self.split = split

        def score(self, users, candidates, stage):
            n = self.split.dataset.n_items
            out = np.zeros((len(users), n))
            for row, u in enumerate(users):
                h = self.split.history(int(u), stage)
                if len(h):
                    out[row, (h[-1] + 1) % n] = 1.0
            return out if candidates is None else np.take_along_axis(out, candidates, 1)

    ds = tiny_dataset()
    prior = RankerPrior(LastItemRanker())
    prior.fit(ds, [h[:2] for h in ds.histories()])
    hist = ds.histories()[0][:5]
    assert int(np.argmax(prior.score(0, hist, None))) == (hist[-1] + 1) % ds.n_items


def test_two_stage_prior_reranks_the_retrievers_top_n():
    from llmrank.explore.priors import TwoStagePrior

    class Reverse:
        """A 'reranker' that reverses the retriever's order inside the top n."""

        name = "reverse"

        def fit(self, dataset, warm):
            self.knn = ItemKNNPrior(neighbors=10)
            self.knn.fit(dataset, warm)

        def score(self, user, history, candidates):
            return -self.knn.score(user, history, candidates)

    ds = tiny_dataset()
    warm = [h[:5] for h in ds.histories()]
    knn = ItemKNNPrior(neighbors=10)
    knn.fit(ds, warm)
    two = TwoStagePrior(ItemKNNPrior(neighbors=10), Reverse(), n=5)
    two.fit(ds, warm)
    hist = ds.histories()[0][:5]
    base = knn.score(0, hist, None).copy()
    base[hist] = -np.inf
    top5 = np.argsort(-base, kind="stable")[:5]
    out = two.score(0, hist, None)
    order = np.argsort(-out, kind="stable")
    assert set(order[:5].tolist()) == set(top5.tolist())
    assert order[0] == top5[-1]  # the reranker's favourite leads
    assert np.isneginf(out[hist]).all()


def test_slate_stats_diversity_novelty_calibration():
    from llmrank.explore.features import ItemFeatures
    from llmrank.explore.replay import slate_stats

    emb = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    genres = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    feats = ItemFeatures(["a", "b", "c"], emb, {"genre": (["x", "y"], genres)},
                         np.array([9.0, 1.0, 1.0]), n_users=9)
    same = slate_stats(feats, feats.codes(["a", "b"]), np.array([1.0, 0.0]))
    mixed = slate_stats(feats, feats.codes(["a", "c"]), np.array([0.5, 0.5]))
    assert same[0] == pytest.approx(0.0) and mixed[0] == pytest.approx(1.0)
    assert same[2] == pytest.approx(0.0) and mixed[2] == pytest.approx(0.0)  # mix matches
    off = slate_stats(feats, feats.codes(["a", "b"]), np.array([0.5, 0.5]))
    assert off[2] > 0.5  # all-x slate for a half-y user
    rare = slate_stats(feats, feats.codes(["b", "c"]), None)
    assert rare[1] > same[1]  # b and c are rarer than a
    assert np.isnan(rare[2])  # no user mix, no calibration


def test_two_stage_prior_presents_retrieval_order_or_a_seeded_shuffle():
    from llmrank.errors import ConfigError
    from llmrank.explore.priors import TwoStagePrior

    class Recorder:
        """A 'reranker' that remembers the candidate order it was shown."""

        name = "recorder"

        def __init__(self):
            self.seen: list[list[int]] = []

        def fit(self, dataset, warm):
            pass

        def score(self, user, history, candidates):
            self.seen.append(candidates.tolist())
            return np.zeros(len(candidates))

    ds = tiny_dataset()
    warm = [h[:5] for h in ds.histories()]
    knn = ItemKNNPrior(neighbors=10)
    knn.fit(ds, warm)
    hist = ds.histories()[0][:5]
    base = knn.score(0, hist, None).copy()
    base[hist] = -np.inf
    best_first = np.argsort(-base, kind="stable")[:5].tolist()
    rec = Recorder()
    for order in ("retrieval", "shuffled", "shuffled"):
        two = TwoStagePrior(ItemKNNPrior(neighbors=10), rec, n=5, order=order, seed=3)
        two.fit(ds, warm)
        two.score(0, hist, None)
    retrieval, shuffled, again = rec.seen
    assert retrieval == best_first
    assert sorted(shuffled) == sorted(best_first) and shuffled != retrieval
    assert shuffled == again  # seeded by (seed, user, history length): reruns hit the cache
    with pytest.raises(ConfigError):
        TwoStagePrior(knn, rec, order="sorted")


def test_text_item_vectors_need_no_log(monkeypatch):
    """item_vectors='text': every item gets a vector from its text, including items nobody
    touched in the warm-up, and the linear bandit runs on them."""
    import llmrank.embed.factory as factory
    from llmrank.embed.hashing import HashingEmbedder
    from llmrank.errors import ConfigError
    from llmrank.explore.features import text_embeddings
    from llmrank.explore.replay import build_features

    ds = tiny_dataset()
    emb = text_embeddings(ds, dim=6, embedder=HashingEmbedder(dim=64))
    assert emb.shape == (ds.n_items, 6)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0)  # no item is left without a vector
    monkeypatch.setattr(factory, "create_embedder", lambda *a, **k: HashingEmbedder(dim=64))
    feats = build_features(ds, [np.zeros(0, np.int64)] * ds.n_users, np.zeros(len(ds.interactions), bool),
                           6, 0, "text")  # an empty log: interaction SVD would have nothing
    assert feats.embeddings is not None and np.allclose(feats.embeddings, emb)
    res = replay(ds, SPECS[-1:], ItemKNNPrior(neighbors=10),
                 ReplayConfig(k=3, n_candidates=10, warmup=0.4, embedding_dim=6, item_vectors="text"))
    assert res.traces["linucb"].hits.mean() > 0
    with pytest.raises(ConfigError, match="item_vectors"):
        build_features(ds, [], np.zeros(0, bool), 6, 0, "pixels")


def test_the_replay_seed_reaches_the_policies():
    """ReplayConfig.seed seeds every policy's draws (seed 0 is the policies' default, so its
    runs are unchanged); a policy's own seed option wins."""
    ds = tiny_dataset()
    specs = [PolicySpec("egreedy", "egreedy", {"epsilon": 0.5}),
             PolicySpec("pinned", "egreedy", {"epsilon": 0.5, "seed": 0})]

    def shown(seed):
        res = replay(ds, specs, PopularityPrior(),
                     ReplayConfig(k=3, n_candidates=10, warmup=0.4, embedding_dim=0, seed=seed))
        return {label: t.shown for label, t in res.traces.items()}

    zero, one = shown(0), shown(1)
    assert zero["egreedy"] == zero["pinned"]  # seed 0 = the policies' own default
    assert one["egreedy"] != zero["egreedy"] and one["pinned"] == zero["pinned"]
    assert shown(1) == one


def test_confidence_intervals_resample_users_not_requests(result, tmp_path):
    """A user's requests are not independent: resampling requests gave the replays' intervals
    7-27% too narrow. The replay records each request's user, the report resamples users,
    and traces.npz keeps them for the paired scripts."""
    from llmrank.explore.report import bootstrap_mean_ci

    ds = tiny_dataset()
    assert len(result.users) == result.steps
    codes = {ds.user_ids[u] for u in result.users.tolist()}
    assert codes <= set(ds.user_ids) and len(codes) > 1
    # 50 users x 20 requests whose hits are all one value per user: the unit of evidence is
    # the user, so the interval is far wider than one that treats 1,000 requests as independent
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(50), 20)
    x = np.repeat(rng.random(50) < 0.3, 20).astype(np.float64)
    lo_r, hi_r = bootstrap_mean_ci(x)
    lo_u, hi_u = bootstrap_mean_ci(x, users)
    assert lo_u <= x.mean() <= hi_u and (hi_u - lo_u) > 3 * (hi_r - lo_r)
    assert bootstrap_mean_ci(x, np.arange(len(x))) == pytest.approx((lo_r, hi_r), abs=0.02)  # one request each
    with pytest.raises(ValueError, match="users for"):
        bootstrap_mean_ci(x, users[:10])
    summary = summarize(result)
    hits = result.traces["greedy"].hits.astype(np.float64)
    assert summary["policies"]["greedy"]["hit_rate_ci"] == pytest.approx(list(bootstrap_mean_ci(hits, result.users)))
    write_report(summary, tmp_path, result=result)
    assert np.array_equal(np.load(tmp_path / "traces.npz")["users"], result.users)
