"""Cross-domain transfer (``run_transfer``) on the tiny model and a slice of ml-100k: a base
adapter is trained once, then the new-domain recipe runs from it and from scratch. The runs
are shared by the module's tests (seconds in all); the bad-input tests never train."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

STEPS = 2
VAL_USERS = 6


@pytest.fixture(scope="module")
def module_home(tmp_path_factory):
    """A private LLMRANK_HOME for the module: run_transfer publishes both adapters."""
    with pytest.MonkeyPatch.context() as mp:
        path = tmp_path_factory.mktemp("home")
        mp.setenv("LLMRANK_HOME", str(path))
        yield path


@pytest.fixture(scope="module")
def base_adapter(recipe_factory, tmp_path_factory, module_home) -> Path:
    """The 'old domain' adapter: another seed, fewer users, LoRA r=4 (the recipes below ask
    r=16), a high learning rate so its scores differ clearly from the base model's."""
    from llmrank.finetune.sft import train_sft

    recipe = recipe_factory(tmp_path_factory.mktemp("base"), **{
        "seed": 1, "examples.max_users": 8, "lora.r": 4, "lora.alpha": 8,
        "train.max_steps": 2, "train.learning_rate": 3e-2})
    return train_sft(recipe).adapter_dir


def transfer_recipe(recipe_factory, out: Path, **overrides: Any):
    return recipe_factory(out, **{"train.max_steps": STEPS, "validation.users": VAL_USERS,
                                  "validation.every": 1, **overrides})


@pytest.fixture(scope="module")
def transfer(recipe_factory, base_adapter, tmp_path_factory, module_home):
    """(recipe, TransferResult, validation calls): every validation pass of both runs is
    recorded as (run folder name, sample, label scores) by wrapping the evaluator."""
    from llmrank.finetune.crossdomain import run_transfer
    from llmrank.finetune.validation import RankingValidation

    recipe = transfer_recipe(recipe_factory, tmp_path_factory.mktemp("transfer"))
    calls: list[tuple[str, Any, np.ndarray]] = []
    evaluate = RankingValidation.evaluate

    def spy(self: RankingValidation, model: Any) -> np.ndarray:
        scores = evaluate(self, model)
        calls.append((self.out_dir.name, self.sample, scores))
        return scores

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(RankingValidation, "evaluate", spy)
        result = run_transfer(recipe, str(base_adapter))
    return recipe, result, calls


def _runs(calls, name):
    return [(sample, scores) for run, sample, scores in calls if run == name]


def test_both_runs_have_the_same_budget(transfer, base_adapter):
    from llmrank.finetune.data import load_examples

    recipe, result, calls = transfer
    a, b = result.transferred, result.scratch
    assert a.steps == b.steps == STEPS
    assert a.manifest.from_adapter == str(base_adapter) and b.manifest.from_adapter is None
    own = ("name", "out", "adapter_name", "from_adapter")
    ra = {k: v for k, v in a.manifest.recipe.items() if k not in own}
    rb = {k: v for k, v in b.manifest.recipe.items() if k not in own}
    assert ra == rb and ra["seed"] == recipe.seed
    assert ra["train"] == recipe.to_dict()["train"] and ra["examples"] == recipe.to_dict()["examples"]
    # the very same training examples (built in each run's folder)
    assert a.manifest.dataset["fingerprint"] == b.manifest.dataset["fingerprint"]
    ea, eb = load_examples(a.out_dir / "data"), load_examples(b.out_dir / "data")
    assert len(ea) == 12
    assert ea["prompt"] == eb["prompt"] and ea["completion"] == eb["completion"]
    assert a.manifest.training["examples_per_step"] == b.manifest.training["examples_per_step"]
    # validated at the same steps on the same users and candidates
    assert [r["step"] for r in a.validation] == [r["step"] for r in b.validation] == [0, 1, 2]
    (sa, _), (sb, _) = _runs(calls, "from-adapter")[0], _runs(calls, "scratch")[0]
    assert len(sa) == VAL_USERS and np.array_equal(sa.users, sb.users)
    assert np.array_equal(sa.target_cols, sb.target_cols)
    assert [[i.item_id for i in c] for c in sa.candidates] == [[i.item_id for i in c] for c in sb.candidates]
    assert a.best is not None and b.best is not None and a.best["users"] == b.best["users"]


def test_both_runs_use_the_base_adapters_lora_shape(transfer):
    """The transferred run inherits the adapter's r=4; a scratch run at the recipe's r=16
    would have four times the capacity, so it must get r=4 too."""
    _, result, _ = transfer
    for run in (result.transferred, result.scratch):
        cfg = json.loads((run.adapter_dir / "adapter_config.json").read_text())
        assert (cfg["r"], cfg["lora_alpha"]) == (4, 8)
        assert run.manifest.lora["r"] == 4


def test_transferred_run_starts_from_the_base_adapter(transfer, base_adapter, tiny_model_dir):
    """Step 0 of the transferred run scores the validation sample exactly as the base
    adapter does when loaded by the reranker's backend; step 0 from scratch is the base model."""
    from llmrank.finetune.prompting import make_builder
    from llmrank.finetune.validation import score_sample
    from llmrank.llm.transformers_backend import TransformersLLM

    recipe, _, calls = transfer
    sample, step0 = _runs(calls, "from-adapter")[0]
    _, scratch0 = _runs(calls, "scratch")[0]

    def reference(adapter: str | None) -> np.ndarray:
        llm = TransformersLLM(str(tiny_model_dir), adapter, batch_size=4, prefix_reuse=False)
        return score_sample(llm, make_builder(llm, recipe.prompt), sample, seed=recipe.seed)

    with_adapter, plain = reference(str(base_adapter)), reference(None)
    np.testing.assert_allclose(step0, with_adapter, atol=1e-4)
    np.testing.assert_allclose(scratch0, plain, atol=1e-4)
    assert np.abs(step0 - scratch0).max() > 1e-2  # the two starts really differ
    # and training moved the transferred run away from its start
    assert np.abs(_runs(calls, "from-adapter")[-1][1] - step0).max() > 1e-4


def test_report_has_the_gain_and_a_paired_test(transfer):
    _, result, _ = transfer
    a, b = result.transferred, result.scratch
    assert a.best is not None and b.best is not None
    best_a = max(r["ndcg@10"] for r in a.validation)
    best_b = max(r["ndcg@10"] for r in b.validation)
    assert a.best["value"] == pytest.approx(best_a) and b.best["value"] == pytest.approx(best_b)
    assert result.gain == pytest.approx(best_a - best_b)
    per_user = np.asarray(a.best["per_user"]) - np.asarray(b.best["per_user"])
    assert result.paired is not None and result.paired.n == VAL_USERS
    assert result.paired.mean_a == pytest.approx(best_a)  # a = from adapter, b = scratch
    assert result.paired.mean_b == pytest.approx(best_b)
    assert result.paired.diff == pytest.approx(per_user.mean())
    assert result.paired.diff == pytest.approx(result.gain)
    assert 0.0 <= result.paired.p_value <= 1.0
    summary = json.loads(json.dumps(result.summary()))
    assert summary["metric"] == "ndcg@10"
    assert summary["from_adapter"] == pytest.approx(best_a)
    assert summary["from_scratch"] == pytest.approx(best_b)
    assert summary["gain"] == pytest.approx(best_a - best_b)
    assert summary["paired"]["n"] == VAL_USERS
    assert summary["from_adapter_run"]["steps"] == summary["from_scratch_run"]["steps"] == STEPS


def _edited_copy(src: Path, dest: Path, **changes: Any) -> Path:
    """A copy of an adapter whose manifest says something else (``prompt`` merged)."""
    from llmrank.finetune.artifacts import MANIFEST

    shutil.copytree(src, dest)
    data = json.loads((dest / MANIFEST).read_text())
    prompt = {**data["prompt"], **changes.pop("prompt", {})}
    (dest / MANIFEST).write_text(json.dumps({**data, **changes, "prompt": prompt}))
    return dest


@pytest.mark.parametrize("case", ["missing", "no-manifest", "other-base-model",
                                  "other-template-version", "other-candidate-text", "no-validation"])
def test_bad_input_fails_before_any_training(case, recipe_factory, base_adapter, tmp_path,
                                             module_home):
    from llmrank.errors import ConfigError, ModelError
    from llmrank.finetune.artifacts import MANIFEST
    from llmrank.finetune.crossdomain import run_transfer

    recipe = transfer_recipe(recipe_factory, tmp_path / "run")
    adapter, error, match = base_adapter, ModelError, ""
    if case == "missing":
        adapter, match = tmp_path / "no-such-adapter", "no LoRA adapter"
    elif case == "no-manifest":
        adapter = Path(shutil.copytree(base_adapter, tmp_path / "bare"))
        (adapter / MANIFEST).unlink()
        match = "no llmrank_adapter.json"
    elif case == "other-base-model":
        other = tmp_path / "other-model"
        other.mkdir()
        adapter = _edited_copy(base_adapter, tmp_path / "a", base_model=str(other),
                               base_model_path=str(other))
        match = "only fits its base model"
    elif case == "other-template-version":
        adapter = _edited_copy(base_adapter, tmp_path / "a", template_version="0.9.0")
        error, match = ConfigError, "learned prompts"
    elif case == "other-candidate-text":
        adapter = _edited_copy(base_adapter, tmp_path / "a", prompt={"candidate_text": "full"})
        error, match = ConfigError, "learned prompts"
    else:
        recipe = transfer_recipe(recipe_factory, tmp_path / "run", **{"validation.users": 0})
        error, match = ConfigError, "validation users"
    with pytest.raises(error, match=match):
        run_transfer(recipe, str(adapter))
    assert not recipe.out_dir().exists()  # failed before preparing data or training


def test_variants_publish_only_when_the_recipe_publishes(tmp_path):
    from llmrank.finetune.config import load_recipe
    from llmrank.finetune.crossdomain import variants

    quiet = load_recipe({"name": "t", "out": str(tmp_path)})
    assert [r.adapter_name for r in variants(quiet, "base")] == [None, None]
    named = load_recipe({"name": "t", "out": str(tmp_path), "adapter_name": "ml100k"})
    a, b = variants(named, "base")
    assert (a.adapter_name, b.adapter_name) == ("ml100k-from-adapter", "ml100k-scratch")
    assert a.from_adapter == "base" and b.from_adapter is None
    assert a.out_dir() != b.out_dir()


def test_gain_is_positive_when_the_adapter_start_helps_also_for_a_loss():
    from types import SimpleNamespace

    from llmrank.finetune.crossdomain import TransferResult

    def run(value: float) -> Any:
        return SimpleNamespace(best={"value": value}, summary=lambda: {})

    assert TransferResult(run(0.5), run(0.4), "ndcg@10", None).gain == pytest.approx(0.1)
    nll = TransferResult(run(1.2), run(1.5), "label_nll", None)  # a lower loss is better
    assert nll.gain == pytest.approx(0.3) and nll.summary()["gain"] == pytest.approx(0.3)
