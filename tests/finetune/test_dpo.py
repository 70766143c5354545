"""DPO smoke tests: pairs from the training split and from logged feedback, training from an
SFT adapter (the reference = that adapter) on the tiny model."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from llmrank.feedback import FeedbackEvent, Impression


def test_split_pairs_prefer_hard_negatives(split100k, prompt_model):
    from llmrank.finetune.config import ExampleSpec, PromptSpec
    from llmrank.finetune.data import build_examples, to_hf_dataset
    from llmrank.finetune.dpo import split_pairs
    from llmrank.finetune.prompting import make_builder

    ds = split100k.dataset

    class Hard:
        def top_items(self, histories, k):
            return [ds.item_ids[-60:] for _ in histories]

    builder = make_builder(prompt_model, PromptSpec(max_history=3, max_prompt_tokens=4096))
    rows = build_examples(split100k, builder, ExampleSpec(per_user=1, max_users=8, n_candidates=5,
                                                           hard_negatives=2, hard_depth=60),
                          hard_source=Hard())
    pairs = split_pairs(to_hf_dataset(rows), pairs_per_example=2, seed=0)
    assert len(pairs) == 16
    for p, row in zip(pairs, [r for r in rows for _ in range(2)], strict=True):
        assert p.chosen == row.completion and p.rejected != p.chosen
        assert p.chosen_item == row.target and p.rejected_item in row.candidates
        idx = row.candidates.index(p.rejected_item)
        assert row.hard[idx]  # both rejected items of a prompt are its hard negatives
        assert p.rejected == " " + "ABCDE"[idx]


def test_dpo_answers_are_the_label_token_alone(prompt_model):
    """DPO compares the next-token log-probs the reranker reads: the prompt encoded as the
    scorer encodes it, each answer one label token and no EOS."""
    from llmrank.finetune.dpo import PreferenceExample, tokenize_dpo

    prompt = "History:\n1. Heat (1995)\nCandidates:\nA. Up (2009)\nB. Jaws (1975)\nAnswer:"
    pairs = [PreferenceExample(prompt, " B", " A", "u1", "i2", "i1", "split")]
    row = tokenize_dpo(pairs, prompt_model)[0]
    assert row["prompt_ids"] == prompt_model.encode(prompt)
    assert row["chosen_ids"] == prompt_model.label_ids([" B"])
    assert row["rejected_ids"] == prompt_model.label_ids([" A"])
    assert prompt_model.tokenizer.eos_token_id not in row["chosen_ids"] + row["rejected_ids"]


def test_feedback_pairs_become_rank_prompts(split100k, prompt_model, tmp_path):
    from llmrank.feedback.pairs import preference_pairs
    from llmrank.feedback.sqlite_store import SqliteFeedbackStore
    from llmrank.finetune.config import PromptSpec
    from llmrank.finetune.dpo import feedback_pairs
    from llmrank.finetune.prompting import make_builder

    ds = split100k.dataset
    store = SqliteFeedbackStore(tmp_path / "fb.sqlite")
    slate = tuple(ds.item_ids[10:16])
    ones = (1.0,) * len(slate)
    store.log_impression(Impression("r1", ds.user_ids[0], slate, tuple(range(6, 0, -1)), ones,
                                    "greedy", timestamp=1.0))
    store.log_event(FeedbackEvent(ds.user_ids[0], slate[2], "click", request_id="r1", timestamp=1.1))
    store.log_impression(Impression("r2", ds.user_ids[1], ("unknown-item", slate[0]), (2, 1),
                                    (1.0, 1.0), "greedy", timestamp=2.0))
    store.log_event(FeedbackEvent(ds.user_ids[1], "unknown-item", "click", request_id="r2",
                                  timestamp=2.1))
    pairs = preference_pairs(store, history=None)
    builder = make_builder(prompt_model, PromptSpec(max_history=3, max_prompt_tokens=4096))
    examples = feedback_pairs(pairs, ds, builder, store=store, n_candidates=8, seed=0)
    store.close()
    assert len(pairs) == 6 and len(examples) == 5  # the unknown item's pair is skipped
    for ex in examples:
        assert ex.chosen_item == slate[2] and ex.rejected_item in slate
        lines = [x for x in ex.prompt.splitlines() if len(x) > 2 and x[1:3] == '. ']
        assert len(lines) == 8  # the 6-item slate plus 2 random fillers
        assert ex.chosen != ex.rejected and ex.source == "feedback"


def test_feedback_prompts_show_the_dataset_history_before_the_impression(split100k, prompt_model,
                                                                       tmp_path):
    """A store with no earlier engagements gives pairs an empty history (or None): the prompt
    then shows the user's dataset interactions before the impression (the latest 3), never
    later ones, so the clicked item, a later interaction of this user, does not leak in."""
    from llmrank.feedback.pairs import preference_pairs
    from llmrank.feedback.sqlite_store import SqliteFeedbackStore
    from llmrank.finetune.config import PromptSpec
    from llmrank.finetune.dpo import feedback_pairs
    from llmrank.finetune.prompting import make_builder

    ds = split100k.dataset
    inter = ds.interactions
    mine = np.flatnonzero(inter.user == 0)
    mine = mine[np.lexsort((inter.order[mine], inter.timestamp[mine]))]
    times = inter.timestamp[mine]
    cut = int(np.searchsorted(times, times[len(times) // 2]))  # first interaction at that time
    before = [ds.item_ids[c] for c in inter.item[mine[:cut]]]
    later = ds.item_ids[inter.item[mine[-1]]]
    unseen = [i for i in ds.item_ids if i not in set(ds.history(ds.user_ids[0]))][:4]
    store = SqliteFeedbackStore(tmp_path / "fb.sqlite")
    slate = (later, *unseen)
    store.log_impression(Impression("r1", ds.user_ids[0], slate, (5, 4, 3, 2, 1), (1.0,) * 5,
                                    "llm", timestamp=float(times[cut])))
    store.log_event(FeedbackEvent(ds.user_ids[0], later, "click", request_id="r1",
                                  timestamp=float(times[cut]) + 1))
    pairs = preference_pairs(store, max_history=3)
    assert pairs and all(p.history == () for p in pairs)  # the store knows nothing earlier
    unknown = preference_pairs(store, history=None)  # history None: 'unknown'
    builder = make_builder(prompt_model, PromptSpec(max_history=3, max_prompt_tokens=4096))
    examples = [*feedback_pairs(pairs, ds, builder, store=store, n_candidates=5, seed=0),
                *feedback_pairs(unknown, ds, builder, store=store, n_candidates=5, seed=0)]
    store.close()
    shown = [ds.items[i].title for i in before if i not in slate][-3:]
    for ex in examples:
        history = ex.prompt.split("Candidates:")[0]
        assert "(no history)" not in history
        assert all(title in history for title in shown)
        assert ds.items[later].title not in history


def test_dpo_smoke_from_sft_adapter(make_recipe, tmp_path, tiny_model_dir):
    from llmrank.finetune.dpo import train_dpo
    from llmrank.finetune.sft import train_sft
    from llmrank.llm.transformers_backend import TransformersLLM

    sft = train_sft(make_recipe(tmp_path / "sft", **{"lora.r": 4, "lora.alpha": 8}))
    recipe = make_recipe(tmp_path / "dpo", **{"mode": "dpo", "from_adapter": str(sft.adapter_dir),
                                              "train.learning_rate": 5e-2})
    from transformers import TrainerCallback

    seen: dict[str, Any] = {}

    class Capture(TrainerCallback):
        def on_train_begin(self, args, state, control, train_dataloader=None, **kwargs):
            seen["rows"] = list(train_dataloader.dataset)

    result = train_dpo(recipe, callbacks=[Capture()])
    # TRL trains on our tokenization: one label token per answer, no EOS appended
    assert seen["rows"] and all(len(r["chosen_ids"]) == 1 and len(r["rejected_ids"]) == 1
                                for r in seen["rows"])
    assert result.steps == 3 and result.manifest.mode == "dpo"
    # the adapter keeps the SFT adapter's shape (r=4), not the recipe's r=16: so says the manifest
    assert (result.manifest.lora["r"], result.manifest.lora["alpha"]) == (4, 8)
    assert result.manifest.from_adapter == str(sft.adapter_dir)
    assert result.manifest.dataset["preference_pairs"] == {"source": "split", "pairs": 12}
    # only the trained adapter is saved, not TRL's frozen reference copy
    assert not (result.adapter_dir / "ref").exists()
    cfg = json.loads((result.adapter_dir / "adapter_config.json").read_text())
    assert cfg["peft_type"] == "LORA"
    from llmrank.finetune.data import load_examples

    prompts = list(load_examples(tmp_path / "dpo" / "data")["prompt"][:2])
    labels = [" A", " B", " C", " D", " E"]
    a = TransformersLLM(str(tiny_model_dir), adapter=str(sft.adapter_dir)).label_logprobs(prompts, labels)
    b = TransformersLLM(str(tiny_model_dir), adapter=str(result.adapter_dir)).label_logprobs(prompts, labels)
    assert np.abs(a - b).max() > 1e-4  # DPO moved the policy away from its SFT reference


def test_feedback_pairs_naming_a_users_held_out_items_are_left_out(split100k, prompt_model, tmp_path):
    """A logged click on a user's validation or test item would teach the answer the tuned
    model is later validated and tested on (or, as the rejected item, its opposite)."""
    from llmrank.feedback.pairs import PreferencePair
    from llmrank.finetune.config import PromptSpec
    from llmrank.finetune.dpo import feedback_pairs, held_out_items
    from llmrank.finetune.prompting import make_builder

    ds = split100k.dataset
    u = int(split100k.eval_users()[0])
    user = ds.user_ids[u]
    valid, test = (ds.item_ids[split100k.target(u, s)] for s in ("valid", "test"))
    free = [i for i in ds.item_ids[:50] if i not in (valid, test)]
    pairs = [PreferencePair(user, (), valid, free[0], "r1"), PreferencePair(user, (), free[1], test, "r2"),
             PreferencePair(user, (), free[2], free[3], "r3")]
    held = held_out_items(split100k)
    assert held[user] == {valid, test}
    builder = make_builder(prompt_model, PromptSpec(max_history=3, max_prompt_tokens=4096))
    examples = feedback_pairs(pairs, ds, builder, n_candidates=5, seed=0, held_out=held)
    assert [(e.chosen_item, e.rejected_item) for e in examples] == [(free[2], free[3])]
    # nor in the prompt of a kept pair: its history (here given) and its other candidates
    # (the impression's slate, here holding both)
    from llmrank.feedback.records import Impression

    class Store:
        def impression(self, request_id):
            return Impression(request_id, user, (free[2], free[3], valid, test, free[4]),
                              (5, 4, 3, 2, 1), (1.0,) * 5, "llm", timestamp=1.0)

    kept = [PreferencePair(user, (test, free[5]), free[2], free[3], "r4")]
    (ex,) = feedback_pairs(kept, ds, builder, store=Store(), n_candidates=5, seed=0, held_out=held)
    for item in (valid, test):
        assert ds.items[item].title not in ex.prompt
    assert ds.items[free[5]].title in ex.prompt and ds.items[free[4]].title in ex.prompt


def test_feedback_prompts_fill_with_items_the_user_never_touched(split100k, prompt_model):
    """Random fillers of a feedback prompt are negatives like the SFT examples' and the eval
    protocols': never an item of the user's whole dataset history (only the shown history and
    the pair were left out, so earlier items beyond ``max_history`` and later ones were drawn)."""
    from llmrank.feedback.pairs import PreferencePair
    from llmrank.finetune.config import PromptSpec
    from llmrank.finetune.dpo import feedback_pairs
    from llmrank.finetune.prompting import make_builder

    ds = split100k.dataset
    hists = ds.histories()
    u = int(max(range(ds.n_users), key=lambda c: len(hists[c])))
    touched = {ds.item_ids[c] for c in hists[u]}
    unseen = [i for i in ds.item_ids if i not in touched]
    shown = [ds.item_ids[c] for c in hists[u][:2]]
    pairs = [PreferencePair(ds.user_ids[u], tuple(shown), unseen[2 * k], unseen[2 * k + 1], f"r{k}")
             for k in range(10)]
    builder = make_builder(prompt_model, PromptSpec(max_history=3, max_prompt_tokens=4096))
    listed: list[list[str]] = []

    class Recording:
        def build(self, history, candidates, **kw):
            listed.append([c.item_id for c in candidates])
            return builder.build(history, candidates, **kw)

    examples = feedback_pairs(pairs, ds, Recording(), n_candidates=20, seed=0)  # type: ignore[arg-type]
    assert len(examples) == len(listed) == 10
    assert len(touched) / ds.n_items > 0.2  # ~180 fillers: many would be the user's at random
    for cands, p in zip(listed, pairs, strict=True):
        assert len(cands) == 20 and {p.chosen, p.rejected} <= set(cands)
        assert not set(cands) & touched
