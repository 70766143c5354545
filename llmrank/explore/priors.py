"""Prior scorers for the replay simulator: where the candidates and their "LLM/ranker" scores
come from at each simulated request.

A prior is fitted on the warm-up part of the log (everything before the replay starts) and then
scores a user's *live* history, which grows as the replay walks forward in time. Built-ins:

* ``ItemKNNPrior``: item-item cosine neighbours (the eval harness's ItemKNNRanker) from the
  warm-up interactions, user score = sum of similarities to the live history. Cheap enough for
  replays of 100k events on two cores.
* ``PopularityPrior``: warm-up interaction counts (the same list for everyone).
* ``FamiliarityPrior``: the LLM's familiarity with each title (``llmrank.llm.familiarity``),
  the same for everyone and learned from no interaction: combined with a retriever through
  ``TwoStagePrior``, it is an LLM prior that costs one pass over the catalog, not a model
  call per request.
* ``TwoStagePrior``: retrieve with one prior, rescore its top n with another (item-kNN then
  the LLM reranker): the recommender's retrieve -> rerank as a replay prior.
* ``RankerPrior``: any ``llmrank.eval.base.Ranker`` (sequential retriever, LLM reranker, ...).
  It is fitted on a split whose training histories are the warm-up, and scores through a split
  whose ``history(user, stage)`` returns the live history, so rankers that read the history at
  scoring time (sequential models, prompt-based rerankers) see the present; rankers that cache
  a user x item matrix at fit time see the warm-up only.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from llmrank.data.dataset import Dataset
from llmrank.data.splits import LeaveOneOut
from llmrank.errors import ConfigError


@runtime_checkable
class Prior(Protocol):
    name: str

    def fit(self, dataset: Dataset, warm_histories: list[np.ndarray]) -> None:
        """Learn from each user's warm-up history (item codes in time order)."""
        ...

    def score(self, user: int, history: np.ndarray, candidates: np.ndarray | None) -> np.ndarray:
        """Scores of ``candidates`` (item codes), or of every item when None, for a user whose
        history so far is ``history``. Higher is better."""
        ...


def warm_split(dataset: Dataset, warm_histories: list[np.ndarray]) -> LeaveOneOut:
    """A split whose training part is the warm-up and which has no evaluation targets. Its
    ``dataset`` holds the warm-up interactions only (same item and user codes): a ranker that
    reads ``split.dataset`` (the harness's RetrieverRanker builds its retriever on it) must not
    see the replay's future."""
    none = np.full(dataset.n_users, -1, np.int64)
    return LeaveOneOut(warm_dataset(dataset, warm_histories),
                       [np.asarray(h, np.int64) for h in warm_histories], none, none.copy())


def warm_dataset(dataset: Dataset, warm_histories: list[np.ndarray]) -> Dataset:
    """``dataset`` cut to the warm-up: each user's first ``len(warm_histories[u])`` events in
    (timestamp, file order), which must be the given history (a prefix of the timeline)."""
    inter = dataset.interactions
    order = np.lexsort((inter.order, inter.timestamp, inter.user))
    bounds = np.searchsorted(inter.user[order], np.arange(dataset.n_users + 1))
    keep = np.zeros(len(inter), dtype=bool)
    for u, h in enumerate(warm_histories):
        rows = order[bounds[u]: bounds[u] + len(h)]
        if len(h) > bounds[u + 1] - bounds[u] or not np.array_equal(inter.item[rows], h):
            raise ValueError(f"the warm-up history of user code {u} is not the start of the "
                             "user's timeline in the dataset")
        keep[rows] = True
    if keep.all():
        return dataset
    # Dataset.subset would warn that a shipped split is dropped; the replay uses none
    return Dataset(f"{dataset.name}-warm-up", dataset.items, dataset.users,
                   inter.take(keep), list(dataset.item_ids), list(dataset.user_ids),
                   report=dataset.report)


class _LiveSplit(LeaveOneOut):
    """``history(u, stage)`` is the live history the replay set for u (else the warm-up one)."""

    live: dict[int, np.ndarray]

    def history(self, user: int, stage: str) -> np.ndarray:
        live = getattr(self, "live", {})
        return live.get(int(user), self.train[user])


class PopularityPrior:
    name = "popularity"

    def fit(self, dataset: Dataset, warm_histories: list[np.ndarray]) -> None:
        flat = np.concatenate(warm_histories) if warm_histories else np.zeros(0, np.int64)
        self.counts = np.log1p(np.bincount(flat, minlength=dataset.n_items).astype(np.float64))

    def score(self, user: int, history: np.ndarray, candidates: np.ndarray | None) -> np.ndarray:
        return self.counts if candidates is None else self.counts[candidates]


class FamiliarityPrior:
    """Per-item LLM familiarity with the title (mean token log-prob after a fixed context),
    computed once for the catalog in ``fit`` (and cached on disk when ``cache_dir`` is set).
    ``llm`` is a loaded transformers backend, or None to load ``model`` on first use."""

    name = "familiarity"

    def __init__(self, model: str = "default", *, llm: Any = None, cache_dir: str | None = None,
                 context: str | None = None, batch_size: int = 32, threads: int | None = None) -> None:
        self.model = model
        self.llm = llm
        self.cache_dir = cache_dir
        self.context = context
        self.batch_size = batch_size
        self.threads = threads

    def fit(self, dataset: Dataset, warm_histories: list[np.ndarray]) -> None:
        from llmrank.llm.familiarity import DEFAULT_CONTEXT, catalog_familiarity

        if self.llm is None:
            from llmrank.llm.transformers_backend import TransformersLLM

            self.llm = TransformersLLM(self.model, threads=self.threads)
        self.scores = catalog_familiarity(dataset, self.llm, cache_dir=self.cache_dir,
                                          context=self.context or DEFAULT_CONTEXT,
                                          batch_size=self.batch_size)

    def score(self, user: int, history: np.ndarray, candidates: np.ndarray | None) -> np.ndarray:
        return self.scores if candidates is None else self.scores[candidates]


class ItemKNNPrior:
    """Sum of warm-up item-item cosine similarities to the live history, plus a tiny popularity
    term that orders items for users with no (known) history."""

    name = "itemknn"

    def __init__(self, neighbors: int = 100, shrinkage: float = 10.0, last: int = 200) -> None:
        self.neighbors = neighbors
        self.shrinkage = shrinkage
        self.last = last  # only the most recent items of long histories (time and drift)

    def fit(self, dataset: Dataset, warm_histories: list[np.ndarray]) -> None:
        from llmrank.baselines.itemknn import ItemKNNRanker

        knn = ItemKNNRanker(neighbors=self.neighbors, shrinkage=self.shrinkage)
        knn.fit(warm_split(dataset, warm_histories), "valid")
        self.similarity = knn.similarity.tocsr()
        pop = PopularityPrior()
        pop.fit(dataset, warm_histories)
        self.tiebreak = 1e-6 * pop.counts

    def score(self, user: int, history: np.ndarray, candidates: np.ndarray | None) -> np.ndarray:
        h = np.asarray(history[-self.last:], dtype=np.int64)
        if len(h):
            full = np.asarray(self.similarity[h].sum(axis=0)).reshape(-1) + self.tiebreak
        else:
            full = self.tiebreak.copy()
        return full if candidates is None else full[candidates]


class RankerPrior:
    """Adapter from the eval harness's Ranker protocol (fit(split, stage) / score(users,
    candidates, stage)) to a replay prior."""

    def __init__(self, ranker: Any, stage: str = "valid") -> None:
        self.ranker = ranker
        self.stage = stage
        self.name = f"ranker:{getattr(ranker, 'name', type(ranker).__name__)}"

    def fit(self, dataset: Dataset, warm_histories: list[np.ndarray]) -> None:
        base = warm_split(dataset, warm_histories)
        self.split = _LiveSplit(base.dataset, base.train, base.valid_target, base.test_target)
        self.split.live = {}
        self.ranker.fit(self.split, self.stage)

    def score(self, user: int, history: np.ndarray, candidates: np.ndarray | None) -> np.ndarray:
        self.split.live[int(user)] = np.asarray(history, np.int64)
        users = np.array([user], np.int64)
        cands = None if candidates is None else np.asarray(candidates, np.int64)[None, :]
        return np.asarray(self.ranker.score(users, cands, self.stage), np.float64)[0]


def interaction_embeddings(dataset: Dataset, warm_histories: list[np.ndarray], dim: int = 32,
                           seed: int = 0) -> np.ndarray:
    """Item embeddings from a truncated SVD of the warm-up user x item matrix (rows of
    unit norm; zeros for items unseen in the warm-up). Cheap behavioural vectors for MMR and
    the linear bandit when no text embedder is wanted; they use no future interactions."""
    from scipy import sparse
    from scipy.sparse.linalg import svds

    rows = np.concatenate([np.full(len(h), u) for u, h in enumerate(warm_histories)] + [np.zeros(0)])
    cols = np.concatenate([*warm_histories, np.zeros(0)]).astype(np.int64)
    m = sparse.csr_matrix((np.ones(len(rows)), (rows.astype(np.int64), cols)),
                          shape=(dataset.n_users, dataset.n_items))
    m.data[:] = 1.0
    k = min(dim, min(m.shape) - 1)
    if k < 1 or m.nnz == 0:  # an empty or one-row warm-up: no item has a vector yet
        return np.zeros((dataset.n_items, max(dim, 1)))
    v0 = np.random.default_rng(seed).random(min(m.shape))
    _, s, vt = svds(m.astype(np.float64), k=k, v0=v0)
    emb = (vt.T * np.sqrt(s)[None, :])
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    return np.asarray(np.divide(emb, norms, out=np.zeros_like(emb), where=norms > 0))


class TwoStagePrior:
    """Retrieve with one prior, rescore the top ``n`` with another (e.g. item-kNN then the LLM
    reranker through ``RankerPrior``): the pipeline's retrieve -> rerank, as a replay prior.
    Items below the top n keep their retrieval score shifted under the reranked block, so a
    replay with ``n_candidates <= n`` sees exactly the retriever's top n, in reranker order.
    ``order`` is how the top n is presented to the reranker (see ``_presented``)."""

    def __init__(self, retrieve: Prior, rerank: Prior, n: int = 20, *,
                 order: str = "retrieval", seed: int = 0) -> None:
        if order not in ("retrieval", "shuffled"):
            raise ConfigError(f"order must be 'retrieval' or 'shuffled', not {order!r}")
        self.retrieve = retrieve
        self.rerank = rerank
        self.n = n
        self.order = order
        self.seed = seed
        self.name = f"{retrieve.name}>{rerank.name}" + ("(shuffled)" if order == "shuffled" else "")

    def fit(self, dataset: Dataset, warm_histories: list[np.ndarray]) -> None:
        self.retrieve.fit(dataset, warm_histories)
        self.rerank.fit(dataset, warm_histories)

    def score(self, user: int, history: np.ndarray, candidates: np.ndarray | None) -> np.ndarray:
        if candidates is not None:
            return self.rerank.score(user, history, candidates)
        full = np.asarray(self.retrieve.score(user, history, None), dtype=np.float64).copy()
        full[history] = -np.inf
        top = np.argpartition(-full, self.n - 1)[: self.n]
        top = top[np.isfinite(full[top])]
        top = self._presented(top, full, user, len(history))
        reranked = np.asarray(self.rerank.score(user, history, top), dtype=np.float64)
        rest = np.isfinite(full)
        rest[top] = False
        out = np.full_like(full, -np.inf)
        if rest.any():  # everything else strictly below the reranked block, in retrieval order
            span = full[rest].max() - full[rest].min()
            out[rest] = reranked.min() - 1.0 - (full[rest].max() - full[rest]) / (span or 1.0)
        out[top] = reranked
        return out

    def _presented(self, top: np.ndarray, full: np.ndarray, user: int, n_history: int) -> np.ndarray:
        """The order the reranker sees its candidates in. "retrieval" (best first) is what the
        recommender does; "shuffled" (seeded by user and history length, so reruns hit the
        reranker's score cache) measures the reranker's own judgement: a position-biased LLM
        reading candidates in retrieval order partly echoes the retriever."""
        top = top[np.argsort(-full[top], kind="stable")]
        if self.order == "shuffled":
            top = top[np.random.default_rng([self.seed, user, n_history]).permutation(len(top))]
        return top
