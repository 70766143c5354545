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
