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


def _broken_package(root, name: str, error: str) -> None:
    (root / name).mkdir()
    (root / name / "__init__.py").write_text(f"raise {error}\n", encoding="utf-8")


def test_a_broken_torch_or_faiss_is_reported_as_broken_not_a_crash(tmp_path, monkeypatch) -> None:
    """An install whose import fails (a missing .so, an ABI mismatch) crashed the doctor with a
    traceback: the one command meant to diagnose it."""
    import sys

    _broken_package(tmp_path, "torch", "OSError('libtorch_cpu.so: undefined symbol')")
    _broken_package(tmp_path, "faiss", "ImportError('libfaiss.so: cannot open shared object file')")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [m for m in sys.modules if m.split(".")[0] in ("torch", "faiss")]:
        monkeypatch.delitem(sys.modules, name)
    info = doctor.gpus()
    assert info["torch_cuda"] is None and "undefined symbol" in info["torch_error"]
    assert info["faiss_gpus"] is None and "cannot open shared object" in info["faiss_error"]
    app = typer.Typer()
    doctor.register(app)
    app.command("noop", hidden=True)(lambda: None)
    table = CliRunner().invoke(app, ["doctor"], env={"COLUMNS": "300"})
    assert table.exit_code == 0, table.output
    assert "broken (OSError: libtorch_cpu.so" in table.stdout
    assert "broken (ImportError: libfaiss.so" in table.stdout
    body = json.loads(CliRunner().invoke(app, ["doctor", "--json"]).stdout)
    assert body["backends"]["llm"]["transformers"] == "broken torch"  # not 'ok'
    assert body["backends"]["vector index"]["faiss"] == "broken faiss"


def test_paths_and_models_match_what_the_library_uses(tmp_path, monkeypatch) -> None:
    """The data dir as the loaders read it ($LLMRANK_DATA_DIR with ~ expanded), and only
    complete models: an interrupted conversion (.partial) is not a converted model."""
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "datasets" / "ml-100k").mkdir(parents=True)
    monkeypatch.setenv("LLMRANK_DATA_DIR", "~/datasets")
    p = doctor.paths()
    assert p["data_dir"] == str(tmp_path / "datasets") and p["datasets_found"] == ["ml-100k"]
    monkeypatch.setenv("LLMRANK_HOME", str(tmp_path / "home"))
    (tmp_path / "home" / "models" / "smollm2-135m-instruct.partial").mkdir(parents=True)
    (tmp_path / "home" / "models" / "mine").mkdir()
    assert doctor.models()["converted_models"] == ["mine"]
