"""One-pass label scoring (the verbalizer) over many requests at once.

For each request and each seeded permutation of its candidates, a strategy job asks for
windows; every window becomes one rank prompt whose next-token log-probs of the labels,
renormalised over the labels, score all of its candidates in ONE forward pass. Scores map
back through the labels to candidate positions, so the result can only ever contain the
candidates. Windows of all requests in a round go to the backend together (batching)."""

from __future__ import annotations

import logging
import time
import zlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from llmrank.llm.base import LLM
from llmrank.llm.logprobs import FLOOR
from llmrank.records import Item
from llmrank.rerank.prompt import RankPromptBuilder
from llmrank.rerank.strategies import Job, make_job

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RankInput:
    """What the scorer ranks: a history (oldest first), candidates, an optional query, and
    a key (user or request id) that seeds the permutations of this request."""

    history: Sequence[Item]
    candidates: Sequence[Item]
    query: str | None = None
    key: str = ""


@dataclass
class RankOutput:
    """Candidate positions (into ``RankInput.candidates``) best first, with their scores."""

    order: list[int]
    scores: np.ndarray  # per candidate position, in input order
    n_prompts: int = 0
    prompt_tokens: int = 0
    seconds: float = 0.0
    histories_kept: list[int] = field(default_factory=list)


def renormalise(logp: np.ndarray) -> np.ndarray:
    """Log-probs over the labels only: log p(label) - logsumexp(labels)."""
    m = logp.max(axis=-1, keepdims=True)
    return logp - (m + np.log(np.exp(logp - m).sum(axis=-1, keepdims=True)))


def permutation(n: int, index: int, seed: int, key: str) -> np.ndarray:
    """Permutation 0 is the given order; the others are seeded by (seed, index, key) so
    results do not depend on batch composition or request order."""
    if index == 0:
        return np.arange(n)
    rng = np.random.default_rng([seed, index, zlib.crc32(key.encode("utf-8"))])
    return rng.permutation(n)


@dataclass
class _Task:
    request: int
    perm: np.ndarray  # presented position -> candidate position
    job: Job
    informative: bool = False  # some window's label scores were not all equal


class LabelScorer:
    """Scores candidates with an LLM through a RankPromptBuilder.

    ``permutations`` > 1 averages the scores of that many orderings (position-bias
    reduction); ``strategy`` ('tournament' or 'window') handles more candidates than labels;
    ``max_labels`` caps the labels per prompt (<= the builder's alphabet)."""

    def __init__(self, llm: LLM, builder: RankPromptBuilder, *, permutations: int = 1,
                 seed: int = 0, strategy: str = "tournament", max_labels: int = 20) -> None:
        self.llm = llm
        self.builder = builder
        self.permutations = max(1, int(permutations))
        self.seed = seed
        self.strategy = strategy
        self.max_labels = min(max_labels, builder.max_labels)
        make_job(self.max_labels + 1, self.max_labels, strategy)  # fail fast on a bad name

    def score(self, inputs: Sequence[RankInput]) -> list[RankOutput]:
        """One RankOutput per input, in input order; the windows of all requests in a round
        share backend calls, and the permutations of a request are averaged."""
        start = time.perf_counter()
        outs = [RankOutput(order=[], scores=np.zeros(len(r.candidates))) for r in inputs]
        tasks = self._tasks(inputs)
        self._run_rounds(inputs, tasks, outs)
        sums = _sum_per_request(tasks)
        for i, out in enumerate(outs):
            if i in sums:
                out.scores = sums[i] / self.permutations
            else:
                out.scores = np.zeros(len(inputs[i].candidates))
            # ties keep the given (retrieval) order: a stable sort on -score
            out.order = [int(j) for j in np.argsort(-out.scores, kind="stable")]
        elapsed = time.perf_counter() - start
        for out in outs:
            out.seconds = elapsed / max(1, len(outs))
        return outs

    def _tasks(self, inputs: Sequence[RankInput]) -> list[_Task]:
        """One strategy job per (request, permutation); a request with fewer than two
        candidates has nothing to rank and gets none, so it costs no model call."""
        tasks: list[_Task] = []
        for i, req in enumerate(inputs):
            n = len(req.candidates)
            if n < 2:
                continue
            for p in range(self.permutations):
                tasks.append(_Task(i, permutation(n, p, self.seed, req.key),
                                   make_job(n, self.max_labels, self.strategy)))
        return tasks

    def _run_rounds(self, inputs: Sequence[RankInput], tasks: list[_Task],
                    outs: list[RankOutput]) -> None:
        """Until every job is done: collect the pending windows of ALL jobs, score them
        together (one backend call per label count), and feed each job its own scores."""
        while True:
            round_windows = [(t, w) for t in tasks for w in t.job.pending()]
            if not round_windows:
                return
            scored = self._score_windows(inputs, round_windows, outs)
            for t in tasks:
                mine = [s for (task, _), s in zip(round_windows, scored, strict=True) if task is t]
                if mine:
                    t.informative = t.informative or any(float(np.ptp(s)) > 0.0 for s in mine)
                    t.job.feed(mine)

    def _score_windows(self, inputs: Sequence[RankInput], windows: list[tuple[_Task, list[int]]],
                       outs: list[RankOutput]) -> list[np.ndarray]:
        """Build one prompt per window, score all prompts with the same label count in one
        backend call, renormalise over the labels."""
        prompts = []
        for task, window in windows:
            req = inputs[task.request]
            cands = [req.candidates[int(task.perm[pos])] for pos in window]
            rp = self.builder.build(req.history, cands, query=req.query)
            prompts.append(rp)
            out = outs[task.request]
            out.n_prompts += 1
            out.prompt_tokens += rp.prompt_tokens
            out.histories_kept.append(rp.n_history)
        results: list[np.ndarray | None] = [None] * len(prompts)
        by_size: dict[int, list[int]] = defaultdict(list)
        for k, rp in enumerate(prompts):
            by_size[len(rp.labels)].append(k)
        for size, idx in by_size.items():
            conts = prompts[idx[0]].continuations
            logp = self.llm.label_logprobs([prompts[k].text for k in idx], conts)
            logp = np.asarray(logp, dtype=np.float64).reshape(len(idx), size)
            # a backend may return -inf for a label it could not see, or garbage: log-probs
            # live in [FLOOR, 0] here, so later sums and level shifts stay finite
            garbage = int(np.count_nonzero(np.isnan(logp) | (logp > 0.0)))
            if garbage:
                log.warning("%s returned %d of %d label log-probs that are NaN or above 0; "
                            "they were set to %g/0, so this ranking is not the model's judgement",
                            getattr(self.llm, "name", type(self.llm).__name__), garbage, logp.size, FLOOR)
            logp = np.clip(np.where(np.isfinite(logp), logp, FLOOR), FLOOR, 0.0)
            for row, k in enumerate(idx):
                results[k] = renormalise(logp[row])
        return [r for r in results if r is not None]


def _sum_per_request(tasks: list[_Task]) -> dict[int, np.ndarray]:
    """Each job's scores mapped from presented positions back to candidate positions,
    summed over the permutations of a request (in permutation order). A job whose every
    window scored its labels all alike (garbage set to the floor, a top-N server that returned
    no label) expressed no preference: its candidates tie, so the given order stands instead
    of the presented order's window cuts."""
    sums: dict[int, np.ndarray] = {}
    for t in tasks:
        presented = t.job.result()  # per presented position
        if not t.informative:
            presented = np.full_like(presented, presented.max())
        per_cand = np.empty_like(presented)
        per_cand[t.perm] = presented
        sums[t.request] = per_cand if t.request not in sums else sums[t.request] + per_cand
    return sums
