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
