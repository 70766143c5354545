"""``llmrank data`` flags that do not apply to what was asked for."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from llmrank.cli.common import exit_code_for
from llmrank.cli.data import app

runner = CliRunner()


@pytest.mark.parametrize("command", [["info", "catalog"], ["convert", "catalog", "out"]])
@pytest.mark.parametrize("fmt", ["movielens", "csv"])
def test_a_format_for_the_embedded_catalog_is_a_usage_error(command, fmt, tmp_path, monkeypatch):
    """`data info catalog -f movielens` printed the catalog, the --format silently ignored."""
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, [*command, "--format", fmt, "--json"])
    assert res.exception is not None and exit_code_for(res.exception) == 2, res.output
    assert "--format" in str(res.exception) and "catalog" in str(res.exception)
    assert res.stdout == "" and not (tmp_path / "out").exists()


def test_the_catalog_without_format_or_with_format_catalog_still_loads(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for extra in ([], ["--format", "catalog"]):
        res = runner.invoke(app, ["info", "catalog", *extra, "--json"])
        assert res.exit_code == 0, res.output
