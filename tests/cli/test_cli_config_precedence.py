"""A flag the user did not give must not override the config file: `retrieve` and `index
build` passed their --retriever default ("text") over the config's retriever.kind, and
`index build --kind auto` could not set the index structure back to auto."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from llmrank.cli import index, retrieve


@pytest.fixture()
def app() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(index.app, name="index")
    retrieve.register(app)
    return app


@pytest.fixture()
def kinds(monkeypatch) -> list[str]:
    """The retriever kind each build asked for; the build itself is a fast text one."""
    import llmrank.retrieve as lr

    asked: list[str] = []
    real = lr.build_retriever

    def spy(ds, cfg, *, kind=None, **kw):
        asked.append(kind or cfg.retriever.kind)
        return real(ds, cfg, kind="text", **kw)

    monkeypatch.setattr(lr, "build_retriever", spy)
    return asked


def _config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text('[embedder]\nbackend = "hashing"\n' + body)
    return path


def test_retrieve_builds_the_configs_retriever_kind(app, kinds, tmp_path) -> None:
    cfg = _config(tmp_path, '[retriever]\nkind = "sequential"\n')
    r = CliRunner().invoke(app, ["retrieve", "--text", "war", "-d", "catalog", "-c", str(cfg), "--json"])
    assert r.exit_code == 0, r.output
    assert kinds == ["sequential"]
    r = CliRunner().invoke(app, ["retrieve", "--text", "war", "-d", "catalog", "-c", str(cfg),
                                 "--retriever", "text", "--json"])
    assert r.exit_code == 0, r.output
    assert kinds == ["sequential", "text"]  # a flag given still wins


def test_index_build_takes_kind_and_structure_from_the_config(app, kinds, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LLMRANK_HOME", str(tmp_path / "home"))
    cfg = _config(tmp_path, '[retriever]\nkind = "fused"\n[index]\nkind = "hnsw"\n')
    r = CliRunner().invoke(app, ["index", "build", "-d", "catalog", "-c", str(cfg), "--json"])
    assert r.exit_code == 0, r.output
    assert kinds == ["fused"]
    built = json.loads(r.stdout)
    assert Path(built["path"]).name == "fused"  # the default folder names the kind
    assert built["manifest"]["index"]["kind"] == "hnsw"
    r = CliRunner().invoke(app, ["index", "build", "-d", "catalog", "-c", str(cfg), "--kind", "auto",
                                 "--retriever", "text", "-o", str(tmp_path / "i"), "--json"])
    assert r.exit_code == 0, r.output
    assert kinds[-1] == "text"
    assert json.loads(r.stdout)["manifest"]["index"]["kind"] == "flat"  # auto: flat for 200 items
