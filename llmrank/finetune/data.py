"""Training examples for the reranker: rank prompts over a user's training history whose
answer is the label of the item the user chose next.

Leakage rules (tested): targets are positions inside ``split.train[u]`` (the history before
the validation item), each example's history is the prefix before its target, and the
negatives are items the user never touched at all, as in the evaluation protocols: a user's
own validation or test item is never a negative (the hard-negative retriever often ranks it
high, which taught the model to rank the held-out targets low). Validation and test targets
are never targets and never appear in a history. Candidate positions are shuffled with an RNG
seeded by (seed, user, position), so the target label is uniform over positions and the
model cannot learn a position; the same seed always gives the same dataset.

With ``candidates = 'retrieved'`` the candidate list is the retriever's top-N for the prefix
(every other item the user touched left out) and prefixes whose target it missed are dropped,
so training sees the retriever top-N protocol that the reranker serves."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from llmrank.data.candidates import user_rng
from llmrank.data.splits import LeaveOneOut
from llmrank.errors import ConfigError
from llmrank.finetune.config import ExampleSpec
from llmrank.finetune.negatives import HardNegativeSource, mix_negatives, top_codes
from llmrank.rerank.prompt import RankPromptBuilder

if TYPE_CHECKING:
    import datasets

log = logging.getLogger(__name__)

META_FILE = "llmrank_finetune_data.json"
# the example rules: bump when a change makes the same recipe give other examples, so a
# cached <out>/data of the older rules is rebuilt (and its checkpoints not resumed)
# 2: hard negatives only from the retriever's top hard_depth (before: up to
#    hard_depth + per_user deep)
EXAMPLES_VERSION = 2
Progress = Callable[[int, int], None]  # (done, total)


@dataclass(frozen=True)
class TrainExample:
    """One SFT example: ``prompt`` (chat-formatted, ends with the answer prefix) and
    ``completion`` (the target's label continuation, e.g. ' C')."""

    user_id: str
    target: str  # item id of the true next item
    position: int  # index of the target in the user's training history
    candidates: tuple[str, ...]  # item ids in prompt order
    hard: tuple[bool, ...]  # per candidate: a retriever negative
    prompt: str
    completion: str
    label: str
    n_history: int
    prompt_tokens: int

    @property
    def target_index(self) -> int:
        return self.candidates.index(self.target)


def example_positions(split: LeaveOneOut, spec: ExampleSpec) -> list[tuple[int, int]]:
    """(user code, target position in ``split.train[user]``) pairs: the last ``per_user``
    training positions with at least ``min_history`` items before them."""
    if spec.per_user < 1:
        raise ConfigError("examples.per_user must be >= 1")
    n_users = split.dataset.n_users
    users = range(n_users if spec.max_users is None else min(n_users, spec.max_users))
    out: list[tuple[int, int]] = []
    for u in users:
        n = len(split.train[u])
        out.extend((u, t) for t in range(max(spec.min_history, n - spec.per_user), n))
    return out


def _retriever_pools(split: LeaveOneOut, positions: Sequence[tuple[int, int]],
                     spec: ExampleSpec, source: HardNegativeSource | None) -> list[list[int]]:
    """Retriever top items (codes) for each example's history prefix; empty when the spec
    needs none. Hard negatives: exactly the top ``hard_depth`` (the user's own items in it
    are left out by the caller, not replaced by deeper ones, so every hard negative is in
    the retriever's top ``hard_depth`` for the prefix). Retrieved candidates: deep enough
    that ``n_candidates`` remain once the user's items after the prefix are left out."""
    retrieved = spec.candidates == "retrieved"
    if retrieved and source is None:
        raise ConfigError("examples.candidates = 'retrieved' needs a retriever "
                          "(examples.retriever or examples.retriever_path)")
    if source is None and spec.hard_negatives > 0:  # else silently random negatives only
        raise ConfigError(f"examples.hard_negatives = {spec.hard_negatives} needs a retriever "
                          "(examples.retriever or examples.retriever_path); set "
                          "examples.hard_negatives = 0 for random negatives only")
    if source is None or (not retrieved and spec.hard_negatives <= 0):
        return [[] for _ in positions]
    prefixes = [split.train[u][:t] for u, t in positions]
    if not retrieved:  # the pool of hard negatives: the retriever's top hard_depth, no deeper
        return [row[: spec.hard_depth] for row in top_codes(source, split, prefixes, spec.hard_depth)]
    # the retriever leaves the prefix out; any other item the user touched may come back and
    # is left out of the list, which must still hold n_candidates items
    touched = split.dataset.histories()
    later = max((len(np.setdiff1d(touched[u], p)) for (u, _), p in zip(positions, prefixes,
                                                                       strict=True)), default=0)
    return top_codes(source, split, prefixes, spec.n_candidates + later)


def retrieved_candidates(pool: Sequence[int], touched: np.ndarray, target: int,
                         n: int) -> np.ndarray | None:
    """The first ``n`` retrieved items that the user never touched (``touched``: their whole
    history; the target excepted), or None when the target is not among them or fewer than ``n`` remain."""
    seen = set(np.asarray(touched).tolist()) - {target}
    top = [c for c in dict.fromkeys(pool) if c not in seen][:n]
    if len(top) < n or target not in top:
        return None
    return np.asarray(top, dtype=np.int64)


def build_examples(split: LeaveOneOut, builder: RankPromptBuilder, spec: ExampleSpec, *,
                   seed: int = 0, hard_source: HardNegativeSource | None = None,
                   progress: Progress | None = None) -> list[TrainExample]:
    """Render one rank prompt per (user, position); see the module docstring for the rules."""
    if spec.n_candidates < 2 or spec.n_candidates > builder.max_labels:
        raise ConfigError(f"examples.n_candidates must be in [2, {builder.max_labels}]")
    ds = split.dataset
    positions = example_positions(split, spec)
    pools = _retriever_pools(split, positions, spec, hard_source)
    items = [ds.items[i] for i in ds.item_ids]
    touched_ever = ds.histories()  # train, validation and test items: none may be a negative
    out: list[TrainExample] = []
    missed = 0
    for k, ((u, t), pool) in enumerate(zip(positions, pools, strict=True)):
        seq = split.train[u]
        target = int(seq[t])
        rng = user_rng(seed, u, salt=t + 1)
        if spec.candidates == "retrieved":
            found = retrieved_candidates(pool, touched_ever[u], target, spec.n_candidates)
            if found is None:
                missed += 1
                continue
            cands, flags = found, found != target
        else:
            exclude = np.append(touched_ever[u], target)  # everything the user ever touched
            negs, is_hard = mix_negatives(ds.n_items, exclude, spec.n_candidates - 1, pool,
                                          spec.hard_negatives, rng)
            cands = np.append(negs, target)
            flags = np.append(is_hard, False)
        order = rng.permutation(len(cands))
        cands, flags = cands[order], flags[order]
        rp = builder.build([items[c] for c in seq[:t]], [items[c] for c in cands])
        target_id = ds.item_ids[target]
        out.append(TrainExample(
            user_id=ds.user_ids[u], target=target_id, position=t,
            candidates=tuple(ds.item_ids[c] for c in cands), hard=tuple(bool(f) for f in flags),
            prompt=rp.text, completion=rp.completion_for(target_id),
            label=rp.label_for(target_id), n_history=rp.n_history,
            prompt_tokens=rp.prompt_tokens,
        ))
        if progress and (k + 1) % 50 == 0:
            progress(k + 1, len(positions))
    if progress:
        progress(len(positions), len(positions))
    if missed:
        log.info("dropped %d of %d prefixes whose target the retriever missed", missed,
                 len(positions))
    log.info("built %d training examples from %d users", len(out), len({e.user_id for e in out}))
    return out


def to_hf_dataset(examples: Sequence[TrainExample]) -> datasets.Dataset:
    """A prompt/completion ``datasets.Dataset`` (TRL's format) with the example metadata."""
    from datasets import Dataset

    rows = [asdict(e) for e in examples]
    for r in rows:
        r["candidates"], r["hard"] = list(r["candidates"]), list(r["hard"])
    return Dataset.from_list(rows)


def save_examples(examples: Sequence[TrainExample], path: str | Path,
                  meta: dict[str, Any]) -> Path:
    """Write the dataset (``save_to_disk``) plus a JSON file saying how it was made."""
    path = Path(path)
    to_hf_dataset(examples).save_to_disk(str(path))
    summary = describe(examples)
    (path / META_FILE).write_text(json.dumps({**meta, "summary": summary}, indent=2),
                                  encoding="utf-8")
    return path


def load_examples(path: str | Path) -> datasets.Dataset:
    from datasets import load_from_disk

    ds = load_from_disk(str(path))
    return ds  # type: ignore[return-value]


def describe(examples: Sequence[TrainExample]) -> dict[str, Any]:
    """Counts a person checks: examples, users, prompt length, label spread, hard share."""
    if not examples:
        return {"examples": 0}
    tokens = np.array([e.prompt_tokens for e in examples])
    labels = [e.label for e in examples]
    hard = np.mean([np.mean(e.hard) for e in examples])
    return {
        "examples": len(examples),
        "users": len({e.user_id for e in examples}),
        "prompt_tokens_mean": round(float(tokens.mean()), 1),
        "prompt_tokens_max": int(tokens.max()),
        "labels": {lab: labels.count(lab) for lab in sorted(set(labels))},
        "hard_negative_share": round(float(hard), 3),
    }
