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


def test_a_device_torch_does_not_know_is_a_usage_error_before_any_data(app, tmp_path, monkeypatch) -> None:
    """--device nosuch loaded the data and then ended in torch's RuntimeError traceback."""
    import llmrank.cli.train_retriever as cli
    from llmrank.cli.common import exit_code_for
    from llmrank.errors import ConfigError

    monkeypatch.setattr(cli, "load_data", lambda *a: pytest.fail("data loaded"))
    res = CliRunner().invoke(app, ["train-retriever", "--dataset", "catalog", "--retriever", "sequential",
                                   "--ensemble", "none", "--epochs", "1", "--device", "nosuch",
                                   "--out", str(tmp_path / "idx"), "--json"])
    assert isinstance(res.exception, ConfigError) and "nosuch" in str(res.exception), repr(res.exception)
    assert exit_code_for(res.exception) == 2 and res.stdout == ""
