"""`llmrank doctor`: a backend is 'ok' only when the library it imports is installed, and
broken plugins are reported (not a crash)."""

from __future__ import annotations

import json

import typer
from typer.testing import CliRunner

from llmrank import registry
from llmrank.cli import doctor


def test_a_backend_whose_library_is_missing_is_not_ok(monkeypatch) -> None:
    reg: registry.Registry[object] = registry.Registry("thing")
    reg.register("lazy", "json:dumps", requires=("llmrank_no_such_lib",))
    reg.register("plain", "json:dumps")
    reg.register("lost", "llmrank_no_such_module:thing")
    assert doctor._backend_status(reg, "lazy") == "needs llmrank_no_such_lib"
    assert doctor._backend_status(reg, "plain") == "ok"
    assert doctor._backend_status(reg, "lost") == "module missing"
    # the vllm backend's own module always exists; vllm itself decides
    monkeypatch.setattr(doctor, "_importable", lambda m: m != "vllm")
    assert doctor.backends()["llm"]["vllm"] == "needs vllm"


def test_broken_plugins_are_reported(monkeypatch) -> None:
    monkeypatch.setattr(registry, "broken_plugins", {"acme[gpu]": "RuntimeError: boom [x]"})
    monkeypatch.setattr(doctor, "gpus", lambda: {"torch_cuda": False, "torch_devices": [], "faiss_gpus": None})
    app = typer.Typer()
    doctor.register(app)
    app.command("noop", hidden=True)(lambda: None)
    body = json.loads(CliRunner().invoke(app, ["doctor", "--json"]).stdout)
    assert body["plugins"]["broken"] == {"acme[gpu]": "RuntimeError: boom [x]"}
    table = CliRunner().invoke(app, ["doctor"], env={"COLUMNS": "200"})
    assert table.exit_code == 0 and "acme[gpu]" in table.stdout and "boom [x]" in table.stdout
