"""``llmrank chat``: one turn with --once (text and --json) and the interactive loop."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from llmrank.cli.common import exit_code_for
from llmrank.cli.main import app

runner = CliRunner()
CONFIG = """
[embedder]
backend = "hashing"
cache = false

[reranker]
backend = "fake"
options = { generations = ["Hello! Ask me for a film."] }
"""


def config(tmp_path):
    path = tmp_path / "deploy.toml"
    path.write_text(CONFIG)
    return str(path)


def test_once_json(tmp_path):
    res = runner.invoke(app, ["chat", "--once", "hi", "--json", "--config", config(tmp_path), "--user", "u001"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["answer"] == "Hello! Ask me for a film." and out["item_ids"] == [] and out["session_id"]


def test_once_text_and_repl(tmp_path):
    res = runner.invoke(app, ["chat", "--once", "hi", "--config", config(tmp_path)])
    assert res.exit_code == 0 and "Hello! Ask me for a film." in res.stdout
    res = runner.invoke(app, ["chat", "--config", config(tmp_path)], input="hello\n\n/quit\n")
    assert res.exit_code == 0 and res.stdout.count("Hello! Ask me for a film.") == 1


def test_unknown_user_is_an_error(tmp_path):
    res = runner.invoke(app, ["chat", "--once", "hi", "--config", config(tmp_path), "--user", "nobody"])
    assert res.exit_code != 0 and "nobody" in str(res.exception)


def test_a_failing_turn_does_not_end_the_conversation(tmp_path, monkeypatch):
    """A turn that fails unexpectedly (e.g. the chat server dropped the connection) prints
    one error line; the conversation goes on."""
    from llmrank.chat.session import ChatSession

    real = ChatSession.send
    calls = {"n": 0}

    def flaky(self, message):
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("chat server went away")
        return real(self, message)

    monkeypatch.setattr(ChatSession, "send", flaky)
    res = runner.invoke(app, ["chat", "--config", config(tmp_path)], input="hello\nagain\n/quit\n")
    assert res.exit_code == 0, res.output
    assert "chat server went away" in res.output and res.stdout.count("Hello! Ask me for a film.") == 1


def test_a_failing_once_turn_is_one_error_line_not_a_traceback(tmp_path, monkeypatch):
    """--once whose turn fails unexpectedly (the chat server is down) says so in one line
    and exits 1, as the interactive loop does, instead of ending in a traceback."""
    from llmrank.chat.session import ChatSession

    def down(self, message):
        raise ConnectionError("chat server went away")

    monkeypatch.setattr(ChatSession, "send", down)
    res = runner.invoke(app, ["chat", "--once", "hi", "--config", config(tmp_path)])
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit), res.exception
    assert "ConnectionError: chat server went away" in res.output


def test_json_without_once_is_refused_before_anything_loads(tmp_path, monkeypatch):
    """The flag combination is checked first: the recommender and the chat model (minutes
    for a local model) were loaded before '--json needs --once' was said."""
    from llmrank.recommender import Recommender

    def never(*args, **kwargs):
        raise AssertionError("loaded the recommender")

    monkeypatch.setattr(Recommender, "from_config", never)
    res = runner.invoke(app, ["chat", "--json", "--config", config(tmp_path)])
    assert res.exit_code == 2 and "--json needs --once" in res.output


def test_a_blank_once_message_is_refused_before_the_model_runs(tmp_path, monkeypatch):
    """``--once ""`` (an empty shell variable) used to send an empty user message to the
    chat model, which answered a question nobody asked; it is a data error (exit 3 under run_guarded), as the
    HTTP API refuses a blank message, and the model is never called."""
    from llmrank.chat.model import LocalChatModel

    def never(*args, **kwargs):
        raise AssertionError("the chat model ran")

    monkeypatch.setattr(LocalChatModel, "_generate", never)
    for message in ("", "   \n"):
        res = runner.invoke(app, ["chat", "--once", message, "--json", "--config", config(tmp_path)])
        assert res.exit_code != 0 and exit_code_for(res.exception) == 3, res.output
        assert "non-empty" in str(res.exception)


def test_ctrl_c_during_a_turn_stops_the_turn_not_the_conversation(tmp_path, monkeypatch):
    """Ctrl-C while the model was answering ended the whole CLI (exit 130) and the session
    with it; at the prompt it still leaves."""
    from llmrank.chat.session import ChatSession

    real = ChatSession.send
    calls = {"n": 0}

    def slow(self, message):
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt
        return real(self, message)

    monkeypatch.setattr(ChatSession, "send", slow)
    res = runner.invoke(app, ["chat", "--config", config(tmp_path)], input="hello\nagain\n/quit\n")
    assert res.exit_code == 0, res.output
    assert "turn interrupted" in res.stdout and res.stdout.count("Hello! Ask me for a film.") == 1
