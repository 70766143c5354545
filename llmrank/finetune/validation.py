"""Validation by the reranker's own metric, not only by loss: the model being trained ranks a
fixed, seeded sample of validation users (their validation target plus random negatives,
exactly the eval harness's 20-candidate protocol at the 'valid' stage) by one-pass label
scoring, and NDCG@10 decides which adapter is kept.

Why not the loss: the loss of the answer token can fall while the ranking does not improve
(e.g. the model grows confident on easy examples), and only the ranking is the product."""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from llmrank.data.candidates import random_candidates
from llmrank.data.splits import LeaveOneOut
from llmrank.errors import ConfigError
from llmrank.eval.metrics import metrics_from_ranks, target_ranks
from llmrank.finetune.config import ValidationSpec, is_better
from llmrank.finetune.negatives import HardNegativeSource, top_codes
from llmrank.records import Item
from llmrank.rerank.prompt import RankPromptBuilder
from llmrank.rerank.scorer import LabelScorer, RankInput

log = logging.getLogger(__name__)

_SAMPLE_SALT = 4242  # the user sample is independent of the candidate draws


@dataclass
class ValidationSample:
    """Fixed users with their validation-stage history and 20-candidate lists."""

    users: np.ndarray  # user codes
    histories: list[list[Item]]
    candidates: list[list[Item]]
    target_cols: np.ndarray  # column of the target in each candidate list

    def __len__(self) -> int:
        return len(self.users)


def validation_sample(split: LeaveOneOut, n_users: int, *, n_negatives: int = 19,
                      seed: int = 0, retriever: HardNegativeSource | None = None
                      ) -> ValidationSample:
    """``n_users`` evaluable users drawn with a seeded RNG (all when fewer), sorted. Without
    ``retriever`` their candidates are the eval harness's 20-candidate lists (same
    ``random_candidates`` call and seed); with one, its top ``n_negatives + 1`` for the
    validation-stage history, drawn among the users whose validation target it retrieved.
    ConfigError when no user qualifies or the catalog is too small for the negatives."""
    ds = split.dataset
    eligible = split.eval_users()
    retrieved: dict[int, np.ndarray] = {}
    if retriever is not None:
        retrieved = _retrieved_lists(split, eligible, n_negatives + 1, retriever)
        if not retrieved:
            raise ConfigError(
                f"validation.protocol = 'retrieved': the retriever's top {n_negatives + 1} holds "
                f"no validation target of the {len(eligible)} evaluable users; use "
                "validation.protocol = 'random' (or validation.users = 0: no validation)")
        eligible = np.asarray(sorted(retrieved), dtype=np.int64)
    if len(eligible) == 0:
        raise ConfigError(f"no user of {ds.name!r} has validation and test items to validate on "
                          "(validation.users = 0 turns validation off)")
    rng = np.random.default_rng([seed, _SAMPLE_SALT])
    users = np.sort(rng.choice(eligible, size=min(n_users, len(eligible)), replace=False))
    if retriever is not None:
        return sample_from_lists(split, users, [retrieved[u] for u in users.tolist()])
    hists = ds.histories()
    _check_room(ds.n_items, [hists[u] for u in users.tolist()], n_negatives)
    return sample_from_lists(split, users, [random_candidates(
        ds.n_items, split.target(u, "valid"), hists[u], n_negatives=n_negatives, seed=seed,
        user=u) for u in users.tolist()])


def catalog_room(n_items: int, histories: Iterable[np.ndarray]) -> int:
    """The fewest never-touched items any of these users has: how many negatives every one
    of them can be given (``n_items`` for no user)."""
    return min((n_items - len(np.unique(h)) for h in histories), default=n_items)


def _check_room(n_items: int, histories: Sequence[np.ndarray], n_negatives: int) -> None:
    """ConfigError when some user touched too much of the catalog for ``n_negatives`` random
    negatives (said before the model loads, not as a sampling error inside validation)."""
    room = catalog_room(n_items, histories)
    if room < n_negatives:
        raise ConfigError(
            f"validation.n_negatives = {n_negatives}, but a validation user touched all but "
            f"{room} of the {n_items} items; use validation.n_negatives <= {room}")


def sample_from_lists(split: LeaveOneOut, users: np.ndarray,
                      candidates: Sequence[Sequence[int] | np.ndarray]) -> ValidationSample:
    """The sample of ``users`` (codes) with these candidate lists (item codes, each holding
    the user's validation target): what a cached sample is rebuilt from."""
    ds = split.dataset
    items = [ds.items[i] for i in ds.item_ids]
    histories, cands, cols = [], [], []
    for u, c in zip(np.asarray(users).tolist(), candidates, strict=True):
        c = np.asarray(c, dtype=np.int64)
        histories.append([items[i] for i in split.history(u, "valid")])
        cands.append([items[i] for i in c])
        cols.append(int(np.flatnonzero(c == split.target(u, "valid"))[0]))
    return ValidationSample(np.asarray(users, dtype=np.int64), histories, cands,
                            np.asarray(cols, dtype=np.int64))


def _retrieved_lists(split: LeaveOneOut, users: np.ndarray, n: int,
                     retriever: HardNegativeSource) -> dict[int, np.ndarray]:
    """User code -> the retriever's top ``n`` (codes) for users whose target is in it."""
    tops = top_codes(retriever, split, [split.history(int(u), "valid") for u in users], n)
    out: dict[int, np.ndarray] = {}
    for u, row in zip(users.tolist(), tops, strict=True):
        if split.target(u, "valid") in row[:n]:
            out[u] = np.asarray(row[:n], dtype=np.int64)
    log.info("validation: retriever top-%d holds the target for %d of %d users", n, len(out),
             len(users))
    return out


def score_sample(llm: Any, builder: RankPromptBuilder, sample: ValidationSample, *,
                 seed: int = 0, chunk: int = 16,
                 progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Label-score every user of ``sample`` with ``llm``: (n_users, n_candidates) label
    log-probs renormalised over the labels (the reranker's scores)."""
    scorer = LabelScorer(llm, builder, permutations=1, seed=seed)
    rows: list[np.ndarray] = []
    for start in range(0, len(sample), chunk):
        inputs = [RankInput(h, c, key=str(int(u))) for h, c, u in zip(
            sample.histories[start: start + chunk], sample.candidates[start: start + chunk],
            sample.users[start: start + chunk], strict=True)]
        rows.extend(o.scores for o in scorer.score(inputs))
        if progress:
            progress(min(start + chunk, len(sample)), len(sample))
    return np.stack(rows)


def per_user_metrics(scores: np.ndarray, target_cols: np.ndarray) -> dict[str, np.ndarray]:
    """The harness's per-user metrics (pessimistic ties) plus the label NLL per user."""
    ranks = target_ranks(scores, target_cols)
    out = {k: v for k, v in metrics_from_ranks(ranks, ks=(1, 5, 10, 20)).items()
           if not k.startswith("mrr@") or k == "mrr@20"}
    logp = scores - np.logaddexp.reduce(scores, axis=1, keepdims=True)
    out["label_nll"] = -logp[np.arange(len(scores)), target_cols]
    return out


def metrics_for(scores: np.ndarray, target_cols: np.ndarray) -> dict[str, float]:
    """Means of ``per_user_metrics``."""
    return {k: float(v.mean()) for k, v in per_user_metrics(scores, target_cols).items()}


class RankingValidation:
    """Runs the validation of one training run, logs each result to ``validation.jsonl``
    and keeps the best adapter in ``<out>/best`` (restored on resume from ``best.json``;
    ``fresh`` clears both, for a run that does not resume)."""

    def __init__(self, sample: ValidationSample, make_builder: Callable[[Any], RankPromptBuilder],
                 tokenizer_path: str, spec: ValidationSpec, out_dir: Path, *, seed: int = 0,
                 adapter_names: Sequence[str] = ("default",), fresh: bool = False,
                 max_prompt_tokens: int = 2048) -> None:
        self.sample = sample
        # the training prompts' bound (the recipe's), not the live model's default of 2048:
        # a recipe above it trained on prompts longer than the ones it was validated on
        self.max_prompt_tokens = max_prompt_tokens
        self.make_builder = make_builder
        self.tokenizer_path = tokenizer_path
        self.spec = spec
        self.out_dir = Path(out_dir)
        self.seed = seed
        self.adapter_names = list(adapter_names)
        self.best_dir = self.out_dir / "best"
        self.best: dict[str, Any] | None = None
        if fresh:  # a new run into an old folder must not inherit that run's best or log
            shutil.rmtree(self.best_dir, ignore_errors=True)
            (self.out_dir / "validation.jsonl").unlink(missing_ok=True)
        best_json = self.best_dir / "best.json"
        if best_json.is_file():
            self.best = json.loads(best_json.read_text(encoding="utf-8"))
        self.history: list[dict[str, Any]] = []

    def full_history(self) -> list[dict[str, Any]]:
        """Every validation of the run from ``validation.jsonl``, by step: ``history`` holds
        only this process's, which after a resume misses the steps before the checkpoint. A
        step validated twice (a killed run redone from an earlier checkpoint) keeps its last
        record."""
        path = self.out_dir / "validation.jsonl"
        if not path.is_file():
            return list(self.history)
        by_step: dict[int, dict[str, Any]] = {}
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                by_step[int(record["step"])] = record
        return [by_step[k] for k in sorted(by_step)]

    def evaluate(self, model: Any) -> np.ndarray:
        """Label scores of ``model`` (a peft model in training) on the sample; mode restored."""
        from llmrank.finetune.live import LiveTransformersLLM

        was_training = model.training
        model.eval()
        try:
            llm = LiveTransformersLLM(model, self.tokenizer_path, batch_size=self.spec.batch_size,
                                      max_prompt_tokens=self.max_prompt_tokens)
            return score_sample(llm, self.make_builder(llm), self.sample, seed=self.seed)
        finally:
            if was_training:
                model.train()

    def step(self, model: Any, global_step: int) -> dict[str, float]:
        """Evaluate, record, and save the adapter when it beats the best so far."""
        start = time.perf_counter()
        per_user = per_user_metrics(self.evaluate(model), self.sample.target_cols)
        metrics = {k: float(v.mean()) for k, v in per_user.items()}
        seconds = time.perf_counter() - start
        record = {"step": global_step, "seconds": round(seconds, 1), **metrics}
        self.history.append(record)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with open(self.out_dir / "validation.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        value = metrics[self.spec.metric]
        if self.best is None or is_better(self.spec.metric, value, float(self.best["value"])):
            self.best = {"step": global_step, "metric": self.spec.metric, "value": value,
                         "metrics": metrics, "users": [int(u) for u in self.sample.users],
                         "per_user": [float(x) for x in per_user[self.spec.metric]]}
            self._save_best(model)
        log.info("validation at step %d: %s %.4f (best %.4f at step %s), %.0fs", global_step,
                 self.spec.metric, value, self.best["value"], self.best["step"], seconds)
        return metrics

    def _save_best(self, model: Any) -> None:
        self.best_dir.mkdir(parents=True, exist_ok=True)
        names = [n for n in self.adapter_names if n in getattr(model, "peft_config", {})]
        model.save_pretrained(str(self.best_dir), selected_adapters=names or None)
        (self.best_dir / "best.json").write_text(json.dumps(self.best, indent=2), encoding="utf-8")


def make_callback(validation: RankingValidation, every: int, *, at_start: bool = True) -> Any:
    """A transformers ``TrainerCallback`` that runs ``validation`` every ``every`` steps (and
    at the start and the end), logging ``val_<metric>`` through the trainer so the values
    reach TensorBoard / W&B next to the loss."""
    from transformers import TrainerCallback

    class RankingValidationCallback(TrainerCallback):  # type: ignore[misc]
        def __init__(self) -> None:
            self.trainer: Any = None  # set after the trainer exists (to log through it)
            self.done_steps: set[int] = set()

        def _run(self, model: Any, step: int) -> None:
            if step in self.done_steps or model is None:
                return
            self.done_steps.add(step)
            metrics = validation.step(model, step)
            if self.trainer is not None:
                self._log({f"val_{k}": v for k, v in metrics.items()})

        def _log(self, values: dict[str, float]) -> None:
            """Log through the trainer, keeping its ``should_log``: ``Trainer.log`` clears the
            flag, which dropped the training loss of every step that was validated."""
            control = self.trainer.control
            should_log = control.should_log
            self.trainer.log(values)
            self.trainer.control.should_log = should_log

        def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None,
                           **kw: Any) -> None:
            if at_start and state.global_step == 0:
                self._run(model, 0)

        def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None,
                        **kw: Any) -> None:
            if every > 0 and state.global_step % every == 0:
                self._run(model, state.global_step)

        def on_train_end(self, args: Any, state: Any, control: Any, model: Any = None,
                         **kw: Any) -> None:
            self._run(model, state.global_step)

    return RankingValidationCallback()
