"""Preference tuning (TRL DPOTrainer) of the reranker on (history prompt, chosen label,
rejected label) pairs.

Pairs come from the training split (chosen = the true next item, rejected = a retriever's
hard negative in the same prompt, else a random one) or from logged feedback (an item the
user clicked vs one shown in the same slate and skipped: ``llmrank.feedback.preference_pairs``).
Both sides share one prompt, so the preference is about the label alone, which is what the
one-pass scorer reads.

Starting from an SFT adapter, TRL copies it into a frozen 'ref' adapter: the reference
policy is the SFT model, as DPO intends. Only the trained 'default' adapter is saved.
Pairs are tokenized here, by the scorer's own encoding, with each answer the label token
alone: DPO then compares exactly the next-token log-probs the reranker reads at inference
(TRL's own tokenization of plain text would append EOS to both answers)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from llmrank.data.candidates import sample_negatives, user_rng
from llmrank.errors import ConfigError, FeedbackError
from llmrank.finetune.config import Recipe
from llmrank.finetune.prepare import PreparedRun, prepare_run
from llmrank.llm.labels import ALPHABET, continuation
from llmrank.rerank.prompt import RankPromptBuilder

if TYPE_CHECKING:
    import datasets

    from llmrank.data.dataset import Dataset
    from llmrank.feedback.records import PreferencePair
    from llmrank.finetune.prompting import TokenizerPromptModel
    from llmrank.finetune.trainer import TrainResult

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreferenceExample:
    prompt: str
    chosen: str  # label continuation, e.g. ' C'
    rejected: str
    user_id: str | None
    chosen_item: str
    rejected_item: str
    source: str  # 'split' or 'feedback'


def split_pairs(examples: datasets.Dataset, pairs_per_example: int = 1, seed: int = 0) -> list[PreferenceExample]:
    """From SFT examples: the target's label is chosen; rejected are hard negatives of the
    same prompt first (seeded choice), random candidates when it has none. Labels are the
    alphabet in prompt order (what ``RankPromptBuilder`` assigns)."""
    out: list[PreferenceExample] = []
    for k, row in enumerate(examples):
        cands: list[str] = row["candidates"]
        hard = [i for i, h in enumerate(row["hard"]) if h]
        others = [i for i, c in enumerate(cands) if c != row["target"] and i not in hard]
        rng = np.random.default_rng([seed, k, 17])
        order = list(rng.permutation(hard)) + list(rng.permutation(others))
        for i in order[:pairs_per_example]:
            out.append(PreferenceExample(
                row["prompt"], row["completion"], continuation(ALPHABET[int(i)]),
                row["user_id"], row["target"], cands[int(i)], "split"))
    return out


HistoryFn = Callable[[str | None, float], list[str]]


def history_before(dataset: Dataset) -> HistoryFn:
    """``(user_id, before) ->`` the user's dataset interactions strictly before time
    ``before``, oldest first ([] for an unknown user)."""
    inter = dataset.interactions
    order = np.lexsort((inter.order, inter.timestamp, inter.user))
    users, items, times = inter.user[order], inter.item[order], inter.timestamp[order]
    bounds = np.searchsorted(users, np.arange(dataset.n_users + 1))

    def history(user_id: str | None, before: float) -> list[str]:
        if not user_id or not dataset.has_user(user_id):
            return []
        u = dataset.user_code(user_id)
        lo, hi = int(bounds[u]), int(bounds[u + 1])
        cut = lo + int(np.searchsorted(times[lo:hi], before, side="left"))
        return [dataset.item_ids[c] for c in items[lo:cut]]

    return history


def prompt_history(pair: PreferencePair, imp: Any, past: HistoryFn) -> list[str]:
    """The pair's own history (the store's engagements before the impression); when it has
    none, the dataset's interactions before the impression's time, minus the slate. Never
    the whole dataset history: it can hold the chosen item itself (a later interaction). An
    impression the store no longer has gives no time, hence no history."""
    if pair.history:
        return list(pair.history)
    if imp is None:
        return []
    shown = set(imp.items)
    return [h for h in past(pair.user_id, imp.timestamp) if h not in shown]


def held_out_items(split: Any) -> dict[str, set[str]]:
    """User id -> the validation and test items of a leave-one-out split: what a tuned model
    is validated and tested on, so no training pair may name them."""
    ds = split.dataset
    return {ds.user_ids[int(u)]: {ds.item_ids[split.target(int(u), s)] for s in ("valid", "test")}
            for u in split.eval_users()}


def feedback_pairs(pairs: Sequence[PreferencePair], dataset: Dataset, builder: RankPromptBuilder,
                   *, store: Any = None, n_candidates: int = 20, seed: int = 0,
                   held_out: dict[str, set[str]] | None = None) -> list[PreferenceExample]:
    """Rank prompts for logged pairs: ``prompt_history``, and the slate's candidates when the
    store still has the impression (else chosen + rejected + random fill), shuffled with a
    seeded RNG. Pairs naming unknown items, or a user's ``held_out`` items, are skipped, and a
    user's held-out items appear nowhere in their prompts (history, slate or random fill). The
    random fill never holds an item of the user's whole dataset history."""
    items = dataset.items
    past = history_before(dataset)
    touched = dataset.histories()
    held_out = held_out or {}
    out: list[PreferenceExample] = []
    skipped = leaked = 0
    for k, p in enumerate(pairs):
        if p.chosen not in items or p.rejected not in items:
            skipped += 1
            continue
        mine = held_out.get(p.user_id or "", set())
        if {p.chosen, p.rejected} & mine:
            leaked += 1
            continue
        imp = store.impression(p.request_id) if store is not None else None
        # the validation/test items stay out of the prompt too: in the history (a later
        # engagement of the store or the dataset) or among the other candidates
        history = [h for h in prompt_history(p, imp, past) if h in items and h not in mine]
        slate: list[str] = []
        if imp is not None:
            slate = [c for c in (imp.candidates or imp.items) if c in items and c not in mine]
        others = [c for c in dict.fromkeys(slate) if c not in (p.chosen, p.rejected)]
        rng = user_rng(seed, k, salt=31)
        others = [others[i] for i in rng.permutation(len(others))][: n_candidates - 2]
        if len(others) < n_candidates - 2:
            # like every negative (SFT examples, eval protocols): nothing the user ever
            # touched in the dataset, not only what the prompt shows
            own = touched[dataset.user_code(p.user_id)] if p.user_id and dataset.has_user(
                p.user_id) else np.zeros(0, np.int64)
            exclude = np.concatenate([dataset.item_codes([
                *history, p.chosen, p.rejected, *others, *(m for m in mine if m in items)]),
                own]).astype(np.int64)
            fill = sample_negatives(dataset.n_items, exclude, n_candidates - 2 - len(others), rng)
            others += [dataset.item_ids[c] for c in fill]
        cands = [p.chosen, p.rejected, *others]
        cands = [cands[i] for i in rng.permutation(len(cands))]
        rp = builder.build([items[h] for h in history], [items[c] for c in cands])
        out.append(PreferenceExample(rp.text, rp.completion_for(p.chosen),
                                     rp.completion_for(p.rejected), p.user_id, p.chosen,
                                     p.rejected, "feedback"))
    if skipped:
        log.warning("skipped %d preference pairs that name items outside the catalog", skipped)
    if leaked:
        log.warning("skipped %d preference pairs that name a user's validation or test item", leaked)
    return out


def open_feedback_db(recipe: Recipe) -> Any:
    """The recipe's feedback store, which must exist: a mistyped ``dpo.feedback_db`` is a
    DataError naming it, not a new empty store that has no pairs."""
    from llmrank.feedback import open_store

    if not recipe.dpo.feedback_db:
        raise ConfigError("dpo.source = 'feedback' needs dpo.feedback_db (a SQLite feedback file)")
    return open_store(path=recipe.dpo.feedback_db, create=False)


def load_feedback_pairs(recipe: Recipe, run: PreparedRun) -> list[PreferenceExample]:
    from llmrank.feedback import preference_pairs

    spec = recipe.dpo
    store = open_feedback_db(recipe)
    try:
        pairs = preference_pairs(store, negatives=spec.negatives,
                                 max_history=recipe.prompt.max_history)
        if not pairs:
            raise FeedbackError(f"no preference pairs in {spec.feedback_db}: it needs impressions "
                                "with at least one click and one non-clicked item")
        return feedback_pairs(pairs, run.data.split.dataset, run.builder, store=store,
                              n_candidates=recipe.examples.n_candidates, seed=recipe.seed,
                              held_out=held_out_items(run.data.split))
    finally:
        store.close()


def tokenize_dpo(pairs: Sequence[PreferenceExample], prompt_model: TokenizerPromptModel) -> datasets.Dataset:
    """``prompt_ids`` exactly as the backend encodes the prompt for scoring; ``chosen_ids`` and
    ``rejected_ids`` the single label token of each answer (as in ``tokenize_sft``: no EOS)."""
    from datasets import Dataset

    rows = []
    for p in pairs:
        chosen, rejected = prompt_model.label_ids([p.chosen, p.rejected])
        rows.append({"prompt_ids": prompt_model.encode(p.prompt), "chosen_ids": [chosen],
                     "rejected_ids": [rejected]})
    return Dataset.from_list(rows)


def pretokenized_dpo_trainer() -> type:
    """DPOTrainer that takes ``prompt_ids`` / ``chosen_ids`` / ``rejected_ids`` as given
    instead of re-tokenizing text (TRL has no switch for it; its collator reads these
    columns). Built on call so that TRL is imported only when training."""
    from trl import DPOTrainer

    class PretokenizedDPOTrainer(DPOTrainer):  # type: ignore[misc]
        def _prepare_dataset(self, dataset: Any, processing_class: Any, args: Any, dataset_name: str) -> Any:
            if {"prompt_ids", "chosen_ids", "rejected_ids"} <= set(dataset.column_names):
                return dataset
            return super()._prepare_dataset(dataset, processing_class, args, dataset_name)

    return PretokenizedDPOTrainer


def train_dpo(recipe: Recipe, *, resume: bool = False, run: PreparedRun | None = None,
              pairs: Sequence[PreferenceExample] | None = None, progress: bool | None = None,
              callbacks: Sequence[Any] = (), dataset: Dataset | None = None,
              on_prepare: Callable[[str, int, int], None] | None = None) -> TrainResult:
    """DPO from ``recipe.from_adapter`` (an SFT adapter; the reference is that adapter) or from
    the base model (a new LoRA; the reference is the base). Same artifacts as SFT."""
    from trl import DPOConfig

    from llmrank.finetune.trainer import fit, pick_device, torch_threads

    if pairs is None and recipe.dpo.source == "feedback":
        open_feedback_db(recipe).close()  # a missing or broken store fails now, not after the data
    device = pick_device(recipe.train)  # a GPU asked for where there is none: before any work
    out = recipe.out_dir()
    out.mkdir(parents=True, exist_ok=True)
    show = recipe.train.progress if progress is None else progress
    with torch_threads(recipe.train.threads):
        run = run or prepare_run(recipe, dataset=dataset, progress=on_prepare)
        if pairs is None:
            pairs = (load_feedback_pairs(recipe, run) if recipe.dpo.source == "feedback"
                     else split_pairs(run.examples, recipe.dpo.pairs_per_example, recipe.seed))
        if not pairs:
            raise ConfigError("no preference pairs to train on")
        log.info("DPO on %d preference pairs (%s)", len(pairs), recipe.dpo.source)
        run.data_meta["preference_pairs"] = {"source": recipe.dpo.source, "pairs": len(pairs)}
        train_ds = tokenize_dpo(pairs, run.prompt_model)
        trainer_class = pretokenized_dpo_trainer()

        def make_trainer(model: Any, peft_cfg: Any, common: dict[str, Any], cbs: list[Any]) -> Any:
            args = DPOConfig(**common, beta=recipe.dpo.beta, loss_type=[recipe.dpo.loss_type],
                             max_length=None)
            return trainer_class(model=model, args=args, train_dataset=train_ds,
                                 processing_class=run.prompt_model.tokenizer, peft_config=peft_cfg,
                                 callbacks=cbs)

        return fit(recipe, run, make_trainer, device=device, show=show, resume=resume,
                   callbacks=callbacks)
