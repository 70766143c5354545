"""`llmrank finetune` refuses a negative seed before any data is prepared."""

from __future__ import annotations

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
