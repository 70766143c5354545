"""`llmrank finetune` end to end on the tiny model (mounted on a bare Typer app, so the test
does not depend on the other command groups)."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from llmrank.cli.common import exit_code_for


def _app() -> typer.Typer:
    from llmrank.cli.finetune import register

    app = typer.Typer()
    register(app)

    @app.command("noop")
    def noop() -> None:  # a second command keeps `finetune` a named subcommand
        pass

    return app


def test_cli_trains_and_prints_json(make_recipe, tmp_path, home):
    recipe = make_recipe()
    path = tmp_path / "tiny.toml"
    lines = [f'base_model = "{recipe.base_model}"', 'name = "tiny-cli"']
    for section, values in recipe.to_dict().items():
        if isinstance(values, dict) and section in ("data", "prompt", "examples", "train", "validation"):
            lines.append(f"[{section}]")
            for k, v in values.items():
                if v is not None and v != {}:
                    lines.append(f"{k} = {json.dumps(v)}")
    path.write_text("\n".join(lines))
    out = tmp_path / "cli-run"
    res = CliRunner().invoke(_app(), ["finetune", "--recipe", str(path), "--steps", "2",
                                      "--lr", "0.01", "--out", str(out), "--name", "tiny-cli",
                                      "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["steps"] == 2 and data["name"] == "tiny-cli" and data["mode"] == "sft"
    assert (out / "adapter" / "llmrank_adapter.json").is_file()
    assert (home / "adapters" / "tiny-cli" / "adapter_config.json").is_file()
    manifest = json.loads((out / "adapter" / "llmrank_adapter.json").read_text())
    assert manifest["recipe"]["train"]["learning_rate"] == 0.01  # the flag overrode the recipe


def test_flags_map_to_recipe_fields():
    from llmrank.cli.finetune import overrides_from_flags

    o = overrides_from_flags(dataset="ml-100k", steps=5, lr=1e-3, dpo=True, from_adapter="a",
                             domain=None, out="o", name="n", base_model=None, users=3,
                             threads=1, seed=7, feedback="fb.db")
    assert o["data.dataset"] == "ml-100k" and o["train.max_steps"] == 5
    assert o["mode"] == "dpo" and o["dpo.source"] == "feedback" and o["dpo.feedback_db"] == "fb.db"
    assert o["from_adapter"] == "a" and o["seed"] == 7 and o["examples.max_users"] == 3
    o = overrides_from_flags(dataset=None, steps=None, lr=None, dpo=False, from_adapter="a",
                             domain="ml-100k", out=None, name=None, base_model=None,
                             users=None, threads=None, seed=None, feedback=None)
    assert o["data.dataset"] == "ml-100k" and "mode" not in o


def test_feedback_implies_dpo_and_two_datasets_are_an_error():
    """--feedback alone trains DPO on its pairs (it was silently ignored: SFT ran); --dataset
    with another --domain is refused (--domain silently won)."""
    import pytest

    from llmrank.cli.finetune import overrides_from_flags
    from llmrank.errors import ConfigError

    flags: dict = {"steps": None, "lr": None, "from_adapter": None, "out": None, "name": None,
                   "base_model": None, "users": None, "threads": None, "seed": None}
    o = overrides_from_flags(dataset=None, domain=None, dpo=False, feedback="fb.db", **flags)
    assert (o["mode"], o["dpo.source"], o["dpo.feedback_db"]) == ("dpo", "feedback", "fb.db")
    with pytest.raises(ConfigError, match="--domain"):
        overrides_from_flags(dataset="x", domain="ml-100k", dpo=False, feedback=None, **flags)
    same = overrides_from_flags(dataset="ml-100k", domain="ml-100k", dpo=False, feedback=None,
                                **flags)
    assert same["data.dataset"] == "ml-100k"


def _recipe_seen(monkeypatch, args: list[str]):  # type: ignore[no-untyped-def]
    """The recipe the command would train, without training."""
    import llmrank.finetune.api as api

    seen = []

    def fake_finetune(recipe, **_):  # type: ignore[no-untyped-def]
        seen.append(recipe)
        raise typer.Exit(0)

    monkeypatch.setattr(api, "finetune", fake_finetune)
    res = CliRunner().invoke(_app(), ["finetune", *args])
    assert res.exit_code == 0, res.output
    return seen[0]


def test_users_caps_the_validation_users_too(monkeypatch):
    """--users 50 left validation at the recipe's 100 users."""
    rec = _recipe_seen(monkeypatch, ["--users", "50"])
    assert rec.examples.max_users == 50 and rec.validation.users == 50
    rec = _recipe_seen(monkeypatch, ["--users", "500"])
    assert rec.validation.users == 100  # the recipe's, when smaller
    rec = _recipe_seen(monkeypatch, ["--users", "5", "--set", "validation.users=0"])
    assert rec.validation.users == 0  # off stays off


def test_set_overrides_recipe_fields(monkeypatch):
    rec = _recipe_seen(monkeypatch, ["--steps", "3", "--set", "examples.hard_negatives=0",
                                     "--set", "adapter_name=null", "--set", "train.max_steps=4"])
    assert rec.examples.hard_negatives == 0 and rec.adapter_name is None
    assert rec.train.max_steps == 4  # --set wins over the flag


def test_the_default_recipe_is_read_from_another_directory(tmp_path, monkeypatch):
    """Run outside the checkout, the default recipe was silently replaced by built-in defaults."""
    monkeypatch.chdir(tmp_path)
    rec = _recipe_seen(monkeypatch, ["--steps", "3", "--json"])
    assert rec.name == "sft-ml-small" and rec.train.max_steps == 3


def test_steps_threads_and_lr_out_of_range_are_usage_errors(monkeypatch):
    """--steps 0 reached the trainer, whose max_steps <= 0 means "train num_train_epochs
    (3) full epochs" (hours instead of a quick run); --threads 0 and a learning rate <= 0
    (gradient ascent) were accepted too."""
    import llmrank.finetune.api as api

    called = []
    monkeypatch.setattr(api, "finetune", lambda recipe, **_: called.append(recipe))
    for args in (["--steps", "0"], ["--steps", "-5"], ["--threads", "0"], ["--lr", "0"],
                 ["--lr", "-1e-4"]):
        res = CliRunner().invoke(_app(), ["finetune", *args, "--json"])
        assert res.exit_code == 2, (args, res.output)
        assert res.stdout == "", args
    assert called == []


def test_a_dpo_recipe_on_a_new_domain_is_not_a_transfer_comparison(monkeypatch):
    """`--recipe dpo.toml --domain D --from-adapter A` asked for a comparison (only --dpo or
    --feedback turned it off), which the API refuses for DPO: the run failed with 'needs an
    SFT recipe'. The recipe's mode decides: a DPO recipe trains DPO on the new domain."""
    import llmrank.finetune.api as api

    seen: list[dict] = []

    def fake_finetune(recipe, **kw):  # type: ignore[no-untyped-def]
        seen.append({"mode": recipe.mode, **kw})
        raise typer.Exit(0)

    monkeypatch.setattr(api, "finetune", fake_finetune)
    args = ["finetune", "--domain", "ml-100k", "--from-adapter", "a", "--steps", "1"]
    res = CliRunner().invoke(_app(), [*args, "--recipe", "dpo.toml"])
    assert res.exit_code == 0, res.output
    assert seen[-1]["mode"] == "dpo" and seen[-1]["compare_scratch"] is False
    res = CliRunner().invoke(_app(), [*args, "--recipe", "sft_ml100k_transfer.toml"])
    assert res.exit_code == 0, res.output
    assert seen[-1]["mode"] == "sft" and seen[-1]["compare_scratch"] is True


def test_the_summary_names_the_run_also_when_nothing_is_published(make_recipe, tmp_path):
    """The table's title read ``name`` from the report summary, where the registry name (None
    for an unpublished run) overwrote the recipe's: 'llmrank finetune: None (sft)'."""
    from pathlib import Path

    from llmrank.cli.common import console
    from llmrank.cli.finetune import _summary_table
    from llmrank.finetune.api import FinetuneReport
    from llmrank.finetune.trainer import TrainResult

    recipe = make_recipe(name="quick-run")
    result = TrainResult(Path(tmp_path / "adapter"), None, None, 2, 3.0, 1.5, 10.0, "cpu",  # type: ignore[arg-type]
                         None, [], tmp_path)
    report = FinetuneReport(recipe, result)
    assert report.summary()["name"] is None and report.summary()["recipe"] == "quick-run"
    with console.capture() as cap:
        _summary_table(report)
    assert "quick-run" in cap.get() and "None" not in cap.get()


@pytest.mark.parametrize("args", [["--seed", "-1"], ["--set", "seed=-1"]])
def test_a_negative_seed_is_a_usage_error_before_any_work(args, monkeypatch):
    """--seed -1 (or a recipe's seed = -1) was accepted and, after the data were prepared,
    ended in numpy's ValueError 'expected non-negative integer' (a traceback, exit 1);
    `eval` and `simulate` refuse it as a usage error."""
    import llmrank.finetune.api as api

    called = []
    monkeypatch.setattr(api, "finetune", lambda recipe, **_: called.append(recipe))
    res = CliRunner().invoke(_app(), ["finetune", *args, "--json"])
    code = res.exit_code if res.exception is None or isinstance(res.exception, SystemExit) \
        else exit_code_for(res.exception)
    assert code == 2, (args, repr(res.exception), res.output)
    assert res.stdout == "" and called == []


@pytest.mark.parametrize("store", ["typo.sqlite", "notes.csv"])
def test_a_feedback_store_that_is_missing_or_not_sqlite_fails_before_the_data_are_prepared(
        store, tmp_path, monkeypatch):
    """--feedback typo.sqlite created an empty store under that name and failed with 'no
    preference pairs' only after the data were prepared (a retriever built for hard
    negatives: up to an hour on CPU)."""
    import llmrank.finetune.dpo as dpo
    from llmrank.errors import DataError

    (tmp_path / "notes.csv").write_text("user,item\n1,2\n")
    monkeypatch.chdir(tmp_path)
    prepared = []
    monkeypatch.setattr(dpo, "prepare_run", lambda *a, **k: prepared.append(a) or pytest.fail("prepared"))
    res = CliRunner().invoke(_app(), ["finetune", "--feedback", store, "--dataset", "catalog",
                                      "--steps", "1", "--out", str(tmp_path / "run"), "--json"])
    assert isinstance(res.exception, DataError) and store in str(res.exception), repr(res.exception)
    assert exit_code_for(res.exception) == 3 and res.stdout == ""
    assert prepared == [] and not (tmp_path / "typo.sqlite").exists() and not (tmp_path / "run").exists()
    assert (tmp_path / "notes.csv").read_text() == "user,item\n1,2\n"
