"""`llmrank demo --config`: the config's [data] and [reranker] sections are kept unless a
flag is given. Embedded catalog, hashing embedder, fake LLM: seconds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from llmrank.cli import demo

CONFIG = """
[data]
dataset = "catalog"
options = {n_users = 40}
[embedder]
backend = "hashing"
cache = false
[reranker]
backend = "fake"
enabled = false
[explain]
source = "template"
"""


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    app = typer.Typer()
    demo.register(app)
    app.command("noop", hidden=True)(lambda: None)
    return app


def run(app: typer.Typer, *args: str):
    return CliRunner().invoke(app, ["demo", "--users", "2", "-k", "3", *args])


def test_config_keeps_its_data_and_reranker_sections(app, tmp_path: Path) -> None:
    path = tmp_path / "deploy[v2].toml"
    path.write_text(CONFIG, encoding="utf-8")
    result = run(app, "--config", str(path), "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["dataset"]["name"] == "catalog" and body["dataset"]["users"] == 40
    assert "deploy[v2].toml" in body["data"]
    assert all(u["response"]["trace"]["llm_calls"] == [] for u in body["users"])  # reranker off
    shown = run(app, "--config", str(path), "--no-explain")  # the data line keeps its brackets
    assert shown.exit_code == 0 and "deploy[v2].toml" in " ".join(shown.output.split())


def test_flags_given_override_the_config(app, tmp_path: Path) -> None:
    path = tmp_path / "deploy.toml"
    path.write_text(CONFIG, encoding="utf-8")
    result = run(app, "--config", str(path), "--rerank", "--no-explain", "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["users"][0]["response"]["trace"]["llm_calls"][0]["stage"] == "rerank"
    assert body["dataset"]["users"] == 40


def test_a_config_without_data_lets_the_demo_choose(app, tmp_path: Path) -> None:
    path = tmp_path / "models.toml"
    path.write_text("[embedder]" + CONFIG.split("[embedder]", 1)[1], encoding="utf-8")
    result = run(app, "--config", str(path), "--dataset", "catalog", "--no-explain", "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["data"] == "catalog (asked for)" and body["dataset"]["users"] != 40


def test_titles_with_brackets_are_shown_as_written(capsys) -> None:
    from types import SimpleNamespace

    from llmrank.records import Item, RankedItem, RecResponse

    items = {"1": Item("1", "[REC]", 2007), "2": Item("2", "Lost [/path] Found", 2001)}
    resp = RecResponse("r", "u", [RankedItem("2", 1.0, 0, explanation="like [REC]")])
    demo._show(SimpleNamespace(items=items), "u", ["1"], resp, True)
    out = " ".join(capsys.readouterr().out.split())
    assert "recently: [REC] (2007)" in out and "Lost [/path] Found" in out and "like [REC]" in out


def test_the_catalog_line_says_why_without_claiming_no_internet(tmp_path: Path, monkeypatch) -> None:
    """With --offline no download was tried, yet the data line said "... and no internet"."""
    import llmrank.data.download as dl
    from llmrank.errors import DatasetNotFoundError

    def no_call(*args, **kwargs):
        raise AssertionError("--offline must not download")

    monkeypatch.setattr(dl, "download", no_call)
    data, why = demo.choose_dataset("auto", str(tmp_path), allow_download=False)
    assert data.dataset == "catalog" and "internet" not in why and "--offline" in why
    assert str(tmp_path) in why

    def offline(*args, **kwargs):
        raise DatasetNotFoundError("could not download ml-latest-small; ...") from OSError("timed out")

    monkeypatch.setattr(dl, "download", offline)
    data, why = demo.choose_dataset("auto", str(tmp_path), allow_download=True)
    assert data.dataset == "catalog" and "download failed: timed out" in why and "..." not in why
