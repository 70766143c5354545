"""Registries: plugins load through entry points, and one broken plugin is a warning, not a
crash of every command (--help and doctor included)."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from llmrank import registry


def _advertise(monkeypatch: pytest.MonkeyPatch, folder: Path,
               modules: dict[str, tuple[str, str | None]]) -> None:
    """Plugins as installed packages would advertise them: each entry point name -> a module
    written into ``folder`` from its source (None: a module that does not exist), found
    through the patched entry points on the next registry lookup."""
    eps = []
    for ep_name, (module, source) in modules.items():
        if source is not None:
            (folder / f"{module}.py").write_text(source)
            monkeypatch.delitem(sys.modules, module, raising=False)
        eps.append(EntryPoint(ep_name, module, registry._PLUGIN_GROUP))
    monkeypatch.syspath_prepend(str(folder))  # after the files: import caches see them
    monkeypatch.setattr(registry.metadata, "entry_points", lambda group: eps)
    monkeypatch.setattr(registry, "_plugins_loaded", False)


@pytest.fixture
def broken_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Two advertised plugins: one whose package is gone, one that raises on import."""
    _advertise(monkeypatch, tmp_path, {
        "gone": ("llmrank_no_such_plugin_pkg", None),
        "bad": ("llmrank_bad_plugin", 'raise RuntimeError("boom [x]")\n')})
    broken: dict[str, str] = {}
    monkeypatch.setattr(registry, "broken_plugins", broken)
    return broken


def test_a_broken_plugin_is_logged_and_skipped(broken_plugin, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="llmrank.registry"):
        assert "transformers" in registry.llms.names()
    assert set(broken_plugin) == {"gone", "bad"}
    assert broken_plugin["bad"] == "RuntimeError: boom [x]"
    assert broken_plugin["gone"].startswith("ModuleNotFoundError")
    text = caplog.text
    assert "'bad'" in text and "'gone'" in text and "skipped" in text


def test_requires_names_the_library_a_backend_imports() -> None:
    assert registry.llms.requires("vllm") == ("vllm",)
    assert registry.llms.requires("fake") == ()
    reg: registry.Registry[object] = registry.Registry("thing")
    reg.register("x", "json:dumps", requires=("a_lib",))
    assert reg.requires("x") == ("a_lib",) and reg.requires("unknown") == ()


def test_a_backend_whose_module_cannot_be_imported_is_a_typed_error() -> None:
    """A plugin's lazy 'module:attr' that fails to import was a raw ModuleNotFoundError (a
    traceback from the CLI); it is a MissingExtraError naming the backend, exit code 4."""
    from llmrank.errors import MissingExtraError, UnknownBackendError

    reg: registry.Registry[object] = registry.Registry("thing")
    reg.register("gone", "llmrank_no_such_module:Thing")
    reg.register("typo", "json:dumpz")
    with pytest.raises(MissingExtraError, match=r"thing backend 'gone'.*llmrank_no_such_module"):
        reg.get("gone")
    with pytest.raises(UnknownBackendError, match=r"thing backend 'typo'.*json.*dumpz"):
        reg.get("typo")


def test_a_thread_that_asks_while_plugins_load_waits_for_them(tmp_path, monkeypatch) -> None:
    """The first two requests of ``llmrank serve`` run in parallel: the second saw plugins as
    loaded while the first was still importing them, and its plugin backend was 'unknown'."""
    thing: registry.Registry[object] = registry.Registry("thing")
    monkeypatch.setattr(registry, "_test_thing", thing, raising=False)
    _advertise(monkeypatch, tmp_path, {"slow": (
        "llmrank_slow_plugin", "import time\nimport llmrank.registry as r\ntime.sleep(0.5)\n"
        "r._test_thing.register('slow', 'json:dumps')\n")})
    first = threading.Thread(target=thing.names)
    first.start()
    time.sleep(0.1)  # the first thread is inside the plugin's import
    assert thing.get("slow") is json.dumps
    first.join()


def test_a_plugin_retriever_kind_is_a_valid_config_and_cli_choice(tmp_path, monkeypatch) -> None:
    """`index build` and `retrieve` offer every registered retriever (their --help lists
    them), but retriever.kind was a Literal of the three built-ins: a plugin's kind was an
    'invalid config' error. A kind no registry knows is still a ConfigError naming the key."""
    from typer.testing import CliRunner

    from llmrank.cli.main import app
    from llmrank.config import load_config
    from llmrank.errors import ConfigError

    _advertise(monkeypatch, tmp_path, {"plain": (
        "llmrank_retr_plugin",
        "from llmrank.registry import retrievers\n"
        "from llmrank.retrieve.text import TextRetriever\n"
        "class PlainText(TextRetriever):\n"
        "    name = 'plain'\n"
        "retrievers.register('plain', PlainText)\n")})
    monkeypatch.setattr(registry.retrievers, "_entries", dict(registry.retrievers._entries))

    assert load_config({"retriever": {"kind": "plain"}}).retriever.kind == "plain"
    with pytest.raises(ConfigError, match=r"retriever\.kind: .*'dense'.*fused, plain, sequential, text"):
        load_config({"retriever": {"kind": "dense"}})
    cfg = tmp_path / "c.toml"
    cfg.write_text('[embedder]\nbackend = "hashing"\n')
    r = CliRunner().invoke(app, ["retrieve", "--text", "war", "-d", "catalog", "-c", str(cfg),
                                 "--retriever", "plain"], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert "plain retrieval for 'war'" in r.stdout
