"""`llmrank eval` flags over a config file whose sections have the wrong shape: one error
line and exit 2, as the same file gives without the flags."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from llmrank.cli.common import exit_code_for
from llmrank.cli.eval import register
from llmrank.errors import ConfigError


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:  # keep "eval" a subcommand, as in the real CLI
        pass

    return app


@pytest.mark.parametrize("body", [
    'rankers = ["most-popular"]\n',             # names, not [[rankers]] tables
    "rankers = 5\n",
    'run = 3\n[[rankers]]\nname = "random"\n',  # run is not a section
    'rankers = [{ name = "random" }, "most-popular"]\n',
])
def test_rankers_flag_over_a_malformed_config_is_a_config_error(body, tmp_path):
    """--rankers read the config's rankers and run sections as lists of tables and a table
    before they were validated: AttributeError / TypeError tracebacks (exit 1)."""
    cfg = tmp_path / "e.toml"
    cfg.write_text(body)
    res = CliRunner().invoke(_app(), ["eval", "--config", str(cfg), "--rankers", "random", "--dataset",
                                      "catalog", "--max-users", "5", "--no-plots", "--out",
                                      str(tmp_path / "out"), "--json"])
    assert isinstance(res.exception, ConfigError), repr(res.exception)
    assert exit_code_for(res.exception) == 2 and res.stdout == ""
