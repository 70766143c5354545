"""``import_gguf`` writes a folder atomically and never destroys what is not its own. The
transformers loaders are replaced by a fake that writes a config (the real conversion is slow
and covered by the slow CLI test); everything around them is the real code."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from llmrank.errors import ModelError
from llmrank.models.gguf_import import MANIFEST, import_gguf


class _FakeLoaded:
    """What AutoTokenizer / AutoModelForCausalLM.from_pretrained return, minimally."""

    conversions = 0

    def __init__(self, filename: str) -> None:
        self.config = type("Cfg", (), {})()
        self.filename = filename

    @classmethod
    def from_pretrained(cls, folder: str, gguf_file: str, **kwargs: object) -> _FakeLoaded:
        if "dtype" in kwargs:  # the model, not the tokenizer
            cls.conversions += 1
            time.sleep(0.2)  # a conversion takes a while: a parallel import overlaps it
        return cls(gguf_file)

    def save_pretrained(self, folder: Path, **kwargs: object) -> None:
        name = "config.json" if kwargs else "tokenizer.json"  # the model saves with safe_serialization
        (Path(folder) / name).write_text(json.dumps({"from": self.filename}), encoding="utf-8")


@pytest.fixture
def fake_hf(monkeypatch, tmp_path):
    import transformers

    _FakeLoaded.conversions = 0
    monkeypatch.setattr(transformers, "AutoTokenizer", _FakeLoaded)
    monkeypatch.setattr(transformers, "AutoModelForCausalLM", _FakeLoaded)
    gguf = tmp_path / "tiny.Q8_0.gguf"
    gguf.write_bytes(b"GGUF")
    return gguf


def test_import_refuses_to_replace_a_folder_that_is_not_a_converted_model(fake_hf, tmp_path):
    mine = tmp_path / "my-project"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me", encoding="utf-8")
    for overwrite in (False, True):
        with pytest.raises(ModelError, match="not a converted model"):
            import_gguf(fake_hf, mine, overwrite=overwrite)
    assert (mine / "notes.txt").read_text(encoding="utf-8") == "keep me"


def test_overwrite_replaces_a_converted_model(fake_hf, tmp_path):
    dest = import_gguf(fake_hf, tmp_path / "models" / "tiny")
    (dest / "stale.bin").write_bytes(b"old")
    again = import_gguf(fake_hf, dest, overwrite=True)
    assert again == dest and (dest / MANIFEST).is_file() and not (dest / "stale.bin").exists()
    assert _FakeLoaded.conversions == 2


def test_a_leftover_partial_folder_is_not_reused(fake_hf, tmp_path):
    dest = tmp_path / "models" / "tiny"
    partial = dest.with_name("tiny.partial")
    partial.mkdir(parents=True)
    (partial / "model-00002-of-00002.safetensors").write_bytes(b"from a crashed run")
    import_gguf(fake_hf, dest)
    assert not (dest / "model-00002-of-00002.safetensors").exists()
    assert not partial.exists()


def test_parallel_imports_into_one_folder_convert_once(fake_hf, tmp_path):
    """``llmrank models import-gguf --out DIR`` twice at once: one converts, one reuses."""
    dest = tmp_path / "out" / "tiny"
    results: list[object] = []

    def run() -> None:
        try:
            results.append(import_gguf(fake_hf, dest))
        except Exception as exc:  # the test reports it below
            results.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [dest, dest]
    assert _FakeLoaded.conversions == 1 and (dest / MANIFEST).is_file()


def test_a_write_error_is_a_model_error_and_leaves_no_partial_folder(fake_hf, tmp_path, monkeypatch):
    """A full disk while saving: safetensors raises its own SafetensorError (not an OSError),
    which reached the CLI as a traceback, and the half-written '.partial' folder (hundreds of
    MB for a real model) stayed on the full disk. The model converted before is kept."""
    from safetensors import SafetensorError

    dest = import_gguf(fake_hf, tmp_path / "models" / "tiny")
    (dest / "weights.bin").write_bytes(b"the good model")

    def full_disk(self, folder, **kwargs):
        (Path(folder) / "model-00001-of-00002.safetensors").write_bytes(b"half")
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(_FakeLoaded, "save_pretrained", full_disk)
    with pytest.raises(ModelError, match="No space left on device"):
        import_gguf(fake_hf, dest, overwrite=True)
    assert not dest.with_name("tiny.partial").exists()
    assert (dest / "weights.bin").read_bytes() == b"the good model" and (dest / MANIFEST).is_file()
    fresh = tmp_path / "models" / "fresh"
    with pytest.raises(ModelError, match="No space left on device"):
        import_gguf(fake_hf, fresh)
    assert sorted(p.name for p in fresh.parent.iterdir() if not p.name.endswith(".lock")) == ["tiny"]


def test_an_unwritable_destination_is_a_model_error(fake_hf, tmp_path, monkeypatch):
    """The models folder cannot be created (read-only home, a file in the way): a typed error."""
    blocker = tmp_path / "home"
    blocker.write_text("a file, not a folder", encoding="utf-8")
    with pytest.raises(ModelError, match="cannot write"):
        import_gguf(fake_hf, blocker / "models" / "tiny")


def test_a_conversion_of_another_gguf_is_not_reused(fake_hf, tmp_path):
    """Two different files with one name (a/model.gguf, b/model.gguf) map to one folder: the
    second import returned the first file's model, silently."""
    other = tmp_path / "other" / fake_hf.name
    other.parent.mkdir()
    other.write_bytes(b"GGUF, another model")
    dest = import_gguf(fake_hf, tmp_path / "models" / "tiny")
    with pytest.raises(ModelError, match=r"converted from .*tiny\.Q8_0\.gguf"):
        import_gguf(other, dest)
    assert json.loads((dest / "config.json").read_text(encoding="utf-8"))["from"] == fake_hf.name
    assert import_gguf(fake_hf, dest) == dest and _FakeLoaded.conversions == 1  # same file: reused
    assert import_gguf(other, dest, overwrite=True) == dest and _FakeLoaded.conversions == 2
    assert json.loads((dest / MANIFEST).read_text(encoding="utf-8"))["source"] == str(other.resolve())


def test_a_conversion_in_another_dtype_is_not_reused(fake_hf, tmp_path):
    """`import-gguf --dtype bfloat16` over a float32 conversion of the same file returned the
    float32 folder (the manifest said float32, the user asked for bfloat16)."""
    dest = import_gguf(fake_hf, tmp_path / "models" / "tiny")
    with pytest.raises(ModelError, match="converted to float32, not bfloat16"):
        import_gguf(fake_hf, dest, dtype="bfloat16")
    assert import_gguf(fake_hf, dest, dtype="bfloat16", overwrite=True) == dest
    assert json.loads((dest / MANIFEST).read_text(encoding="utf-8"))["dtype"] == "bfloat16"


def test_the_cli_checks_the_name_whatever_the_dtype(fake_hf, tmp_path, monkeypatch):
    """`import-gguf --name ../x --dtype bfloat16` skipped the name check (only float32 went
    through import_gguf_cached) and wrote outside the models folder."""
    from typer.testing import CliRunner

    from llmrank.cli.main import app

    monkeypatch.setenv("LLMRANK_HOME", str(tmp_path / "home"))
    res = CliRunner().invoke(app, ["models", "import-gguf", str(fake_hf), "--name", "../x",
                                   "--dtype", "bfloat16", "--json"])
    assert res.exit_code != 0 and not (tmp_path / "home" / "x").exists()
    res = CliRunner().invoke(app, ["models", "import-gguf", str(fake_hf), "--name", "ok",
                                   "--dtype", "bfloat16", "--json"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "home" / "models" / "ok" / MANIFEST).is_file()
