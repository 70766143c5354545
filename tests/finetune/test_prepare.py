from __future__ import annotations

import pytest

from llmrank.errors import ConfigError
from llmrank.finetune.prepare import load_data, prepare_run


def test_retrieved_examples_and_validation_share_one_retriever(make_recipe, prefix_oracle):
    recipe = make_recipe(**{"examples.candidates": "retrieved", "examples.per_user": 2,
                            "validation.protocol": "retrieved", "validation.users": 5})
    split = load_data(recipe).split
    oracle = prefix_oracle(split, split.dataset.item_ids[-60:])
    calls = []

    class Counting:
        def top_items(self, histories, k):
            calls.append(k)
            return oracle.top_items(histories, k)

    run = prepare_run(recipe, hard_source=Counting())
    assert run.data_meta["prefixes"] == 24  # 12 users x 2 positions
    ds = split.dataset
    users = {ds.user_code(u) for u in run.examples["user_id"]}
    assert users and all(u % 2 == 0 for u in users)  # the oracle misses odd users' targets
    assert all(t in c for t, c in zip(run.examples["target"], run.examples["candidates"],
                                      strict=True))
    assert run.validation is not None and len(run.validation) == 5
    assert all(u % 2 == 0 for u in run.validation.users.tolist())
    assert len(calls) == 2  # one batched query for the examples, one for validation


def test_retrieved_validation_needs_a_retriever(make_recipe):
    recipe = make_recipe(**{"validation.protocol": "retrieved", "validation.users": 5})
    with pytest.raises(ConfigError, match="needs a retriever"):
        prepare_run(recipe)


def _synthetic(make_recipe, **overrides):
    from llmrank.eval.synthetic import synthetic_dataset

    recipe = make_recipe(**{"data.dataset": "synthetic", **overrides})
    return recipe, synthetic_dataset(n_users=20, n_items=25, min_len=20, max_len=24, seed=1)


def test_data_too_small_for_the_recipe_fails_with_the_cause(make_recipe):
    """Each fails in prepare_run (before any model loads) with a ConfigError naming the
    setting, not an IndexError or a sampling error from deep inside."""
    from llmrank.eval.synthetic import synthetic_dataset

    short = synthetic_dataset(n_users=20, n_items=100, min_len=5, max_len=5, seed=1)
    with pytest.raises(ConfigError, match=r"no training example.*min_history"):
        prepare_run(make_recipe(**{"data.dataset": "synthetic"}), dataset=short)
    recipe, small = _synthetic(make_recipe, **{"examples.n_candidates": 10})
    with pytest.raises(ConfigError, match=r"examples\.n_candidates <= 2"):
        prepare_run(recipe, dataset=small)
    recipe, small = _synthetic(make_recipe, **{"examples.n_candidates": 2,
                                               "validation.users": 5})
    with pytest.raises(ConfigError, match=r"validation\.n_negatives <= 1"):
        prepare_run(recipe, dataset=small)


def test_a_retriever_that_finds_no_validation_target_is_a_config_error(make_recipe):
    recipe = make_recipe(**{"validation.protocol": "retrieved", "validation.users": 5})
    ds = load_data(recipe).split.dataset

    class Misses:  # proposes only items that are nobody's validation target here
        def top_items(self, histories, k):
            return [[i for i in ds.item_ids[-40:] if i not in set(h)][:k] for h in histories]

    with pytest.raises(ConfigError, match="holds no validation target"):
        prepare_run(recipe, hard_source=Misses())


def test_the_validation_sample_is_cached_so_a_resume_needs_no_retriever(make_recipe,
                                                                        prefix_oracle):
    import numpy as np

    recipe = make_recipe(**{"validation.protocol": "retrieved", "validation.users": 5})
    split = load_data(recipe).split
    oracle = prefix_oracle(split, split.dataset.item_ids[-60:])
    calls = []

    class Counting:
        def top_items(self, histories, k):
            calls.append(k)
            return oracle.top_items(histories, k)

    first = prepare_run(recipe, hard_source=Counting()).validation
    again = prepare_run(recipe, hard_source=Counting()).validation
    assert len(calls) == 1  # the second start read the sample, it asked no retriever
    assert first is not None and again is not None
    assert np.array_equal(first.users, again.users)
    assert np.array_equal(first.target_cols, again.target_cols)
    assert [[i.item_id for i in c] for c in first.candidates] == \
        [[i.item_id for i in c] for c in again.candidates]
    assert [[i.item_id for i in h] for h in first.histories] == \
        [[i.item_id for i in h] for h in again.histories]
    other = make_recipe(**{"validation.protocol": "retrieved", "validation.users": 4})
    assert len(prepare_run(other, hard_source=Counting()).validation) == 4  # another key: redrawn
    assert len(calls) == 2


def test_hard_negatives_without_a_retriever_are_a_config_error(make_recipe, split100k, prompt_model):
    """examples.hard_negatives > 0 with examples.retriever = 'none' (and no retriever_path)
    silently trained on random negatives only, while the manifest's recipe said 9 were hard."""
    from llmrank.finetune.config import ExampleSpec, PromptSpec
    from llmrank.finetune.data import build_examples
    from llmrank.finetune.prompting import make_builder

    with pytest.raises(ConfigError, match=r"examples\.hard_negatives = 2 needs a retriever"):
        prepare_run(make_recipe(**{"examples.hard_negatives": 2}))
    builder = make_builder(prompt_model, PromptSpec(max_history=5, max_prompt_tokens=4096))
    with pytest.raises(ConfigError, match="needs a retriever"):
        build_examples(split100k, builder, ExampleSpec(max_users=3, n_candidates=5,
                                                       hard_negatives=1))


def test_examples_cached_by_an_older_example_builder_are_rebuilt(make_recipe, split100k):
    """The cached examples are reused when their fingerprint matches, and the fingerprint
    held only the recipe: a folder written before the example rules changed (e.g. hard
    negatives from deeper than ``hard_depth``) was silently reused by a fresh run. A cache
    that does not record the current ``EXAMPLES_VERSION`` is rebuilt."""
    import json

    from llmrank.finetune.data import META_FILE

    pool = split100k.dataset.item_ids[-60:]
    calls = []

    class Counting:
        def top_items(self, histories, k):
            calls.append(k)
            return [pool[:k] for _ in histories]

    recipe = make_recipe(**{"examples.hard_negatives": 2, "examples.hard_depth": 20})
    prepare_run(recipe, hard_source=Counting())
    prepare_run(recipe, hard_source=Counting())
    assert len(calls) == 1  # same recipe, same builder: reused
    meta_path = recipe.out_dir() / "data" / META_FILE
    meta = json.loads(meta_path.read_text())
    meta.pop("examples_version", None)  # what a folder of the older builder holds
    meta_path.write_text(json.dumps(meta))
    run = prepare_run(recipe, hard_source=Counting())
    assert len(calls) == 2  # rebuilt
    assert "examples_version" in json.loads(meta_path.read_text())
    assert run.data_meta["examples_version"] == json.loads(meta_path.read_text())["examples_version"]
