"""train-retriever flags out of torch's range are usage errors before any data is loaded:
--dropout 5 and --lr -1 reached torch (nn.Dropout, Adam) and ended in ValueError tracebacks."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from llmrank.cli.train_retriever import register


@pytest.fixture()
def app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:  # keep `train-retriever` a subcommand
        pass

    return app


@pytest.mark.parametrize(("flag", "value"), [("--dropout", "5"), ("--dropout", "-0.1"), ("--lr", "-1")])
def test_out_of_range_training_flags_are_usage_errors(app, tmp_path, flag, value) -> None:
    res = CliRunner().invoke(app, ["train-retriever", "--dataset", "catalog", "--retriever", "sequential",
                                   "--ensemble", "none", "--epochs", "1", flag, value,
                                   "--out", str(tmp_path / "idx"), "--json"])
    assert res.exit_code == 2, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    assert flag in res.output
