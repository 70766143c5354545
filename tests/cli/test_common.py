"""The console entry point turns usage errors into a message and exit code 2, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def test_usage_error_is_a_message_not_a_traceback() -> None:
    proc = subprocess.run([sys.executable, "-m", "llmrank.cli.main", "retrieve"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "--user" in proc.stderr


def test_unknown_option_is_a_usage_error() -> None:
    proc = subprocess.run([sys.executable, "-m", "llmrank.cli.main", "doctor", "--no-such-flag"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "--no-such-flag" in proc.stderr


def test_parse_key_values_reads_json_values_and_rejects_bare_keys():
    import typer

    from llmrank.cli.common import parse_key_values

    got = parse_key_values(["train.learning_rate=5e-5", "name=x", "a.b=[1, 2]", "flag=true"])
    assert got == {"train.learning_rate": 5e-5, "name": "x", "a.b": [1, 2], "flag": True}
    assert parse_key_values(None) == {}
    with pytest.raises(typer.BadParameter, match="--var wants KEY=VALUE"):
        parse_key_values(["oops"], "--var")


def test_exit_codes_by_error_type():
    from llmrank.cli.common import exit_code_for
    from llmrank.errors import (
        ConfigError,
        DataError,
        LlmrankError,
        MissingExtraError,
        UnknownBackendError,
        UnknownUserError,
    )

    assert exit_code_for(ConfigError("x")) == 2
    assert exit_code_for(UnknownBackendError("no llm backend nosuch")) == 2  # a misspelt name
    assert exit_code_for(DataError("x")) == 3
    assert exit_code_for(MissingExtraError("x")) == 4
    assert exit_code_for(UnknownUserError("u1")) == 5
    assert exit_code_for(LlmrankError("x")) == 1


def _guarded(app, monkeypatch, capsys, *argv: str) -> tuple[int, str]:
    from llmrank.cli.common import run_guarded

    monkeypatch.setattr(sys, "argv", ["llmrank", *argv])
    with pytest.raises(SystemExit) as info:
        run_guarded(app)
    return int(info.value.code or 0), capsys.readouterr().err


def _app():
    import typer

    from llmrank.errors import MissingExtraError

    app = typer.Typer()

    @app.command()
    def extra() -> None:
        raise MissingExtraError("vllm is not installed; install it with: pip install 'llmrank[gpu]'")

    @app.command()
    def code(n: int = 3) -> None:
        raise typer.Exit(n)

    return app


def test_error_text_is_printed_literally_not_as_markup(monkeypatch, capsys) -> None:
    """Rich markup would swallow '[gpu]' and leave the wrong advice: pip install 'llmrank'."""
    code, err = _guarded(_app(), monkeypatch, capsys, "extra")
    assert code == 4
    assert "pip install 'llmrank[gpu]'" in " ".join(err.split())


def test_a_commands_exit_code_reaches_the_shell(monkeypatch, capsys) -> None:
    """click returns typer.Exit's code in non-standalone mode instead of raising it."""
    assert _guarded(_app(), monkeypatch, capsys, "code", "--n", "3")[0] == 3
    assert _guarded(_app(), monkeypatch, capsys, "code", "--n", "0")[0] == 0


def test_set_null_clears_a_key_but_var_null_stays_none() -> None:
    from llmrank.cli.common import parse_key_values
    from llmrank.config_files import NULL

    assert parse_key_values(["reranker.adapter=null"]) == {"reranker.adapter": NULL}
    assert parse_key_values(["x=null"], "--var") == {"x": None}


def test_set_null_overrides_a_value_from_the_config_file(tmp_path) -> None:
    from llmrank.cli.common import parse_key_values
    from llmrank.config import load_config

    path = tmp_path / "c.toml"
    path.write_text('[reranker]\nadapter = "ranking-lora"\n[feedback]\npath = "fb.sqlite"\n')
    cfg = load_config(path, {"reranker.model": None,  # a flag not given
                             **parse_key_values(["reranker.adapter=null", "feedback.path=null"])})
    assert cfg.reranker.adapter is None and cfg.feedback.path is None
    assert cfg.reranker.model == "default"


def test_a_long_error_is_one_line_on_stderr(monkeypatch, capsys) -> None:
    """Rich wrapped it at 80 columns when stderr was not a terminal: several lines."""
    from llmrank.config import load_config

    app = _app()

    @app.command()
    def config() -> None:
        load_config(None, {"reranker.permutations": 0, "retriever.n_candidates": "x",
                           "reranker.bogus": 1})

    code, err = _guarded(app, monkeypatch, capsys, "config")
    assert code == 2 and len(err.strip().splitlines()) == 1 and len(err) > 120
    assert "reranker.permutations: Input should be greater than or equal to 1 (got 0); " in err


def test_setup_logging_quietens_hf_progress_bars_unless_verbose(monkeypatch):
    """The "Loading weights 0%|..." bars of transformers and sentence-transformers cluttered
    every command's stderr; --verbose keeps them, and a value the user set is kept."""
    from llmrank.cli.common import setup_logging

    monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS", raising=False)
    setup_logging(verbose=True)
    assert "HF_HUB_DISABLE_PROGRESS_BARS" not in os.environ
    setup_logging(verbose=False)
    assert os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "0")
    setup_logging(verbose=False)
    assert os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "0"


def test_an_os_error_is_one_line_and_exit_1_not_a_traceback(monkeypatch, capsys, tmp_path) -> None:
    """`index build --out FILE` (an existing file, not a folder) and an output folder that
    cannot be made escaped run_guarded as a NotADirectoryError / FileNotFoundError traceback."""
    from llmrank.cli.main import app

    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    code, err = _guarded(app, monkeypatch, capsys, "index", "build", "--dataset", "catalog",
                         "--embedder", "hashing", "--out", str(blocker), "--json")
    assert code == 1
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert err.startswith("error:") and "Not a directory" in err and str(blocker) in " ".join(err.split())


@pytest.mark.parametrize(("argv", "given"), [
    (["index", "build", "--dataset", "catalog", "--embedder", "hashing", "--out", "small.csv/idx"],
     "--out small.csv/idx"),
    (["index", "build", "--dataset", "catalog", "--embedder", "hashing", "--out=small.csv/a/b"],
     "--out small.csv/a/b"),
    (["data", "download", "ml-100k", "--data-dir", "small.csv/data"], "--data-dir small.csv/data"),
    (["data", "convert", "catalog", "small.csv/a/b"], "small.csv/a/b"),
])
def test_an_os_error_names_the_flag_and_the_file_in_the_way(argv, given, monkeypatch, capsys, tmp_path):
    """An output path under a file printed the raw "[Errno 17] File exists: 'small.csv'" or
    "[Errno 20] Not a directory: 'small.csv/out'": which option, and what is wrong with it?"""
    from llmrank.cli.main import app

    monkeypatch.chdir(tmp_path)
    (tmp_path / "small.csv").write_text("user,item\n")
    code, err = _guarded(app, monkeypatch, capsys, *argv, "--json")  # --json: no progress bars
    line = " ".join(err.split())
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert line.startswith(f"error: {given}: ") and "small.csv is a file, not a folder" in line, line
    assert "[Errno" not in line


def test_print_json_escapes_text_utf8_cannot_encode(capsys):
    """A lone surrogate (half an emoji, e.g. in a logged context) made print_json raise
    UnicodeEncodeError when stdout is UTF-8: `feedback export --json` stopped. Other
    non-ASCII text stays readable."""
    import io
    import json
    import sys

    from llmrank.cli.common import print_json

    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    real, sys.stdout = sys.stdout, out
    try:
        print_json({"title": "Amélie", "history": ["ok", "\ud83d"]})
        print_json({"title": "Amélie"})
    finally:
        sys.stdout = real
    out.seek(0)
    first, second = out.read().split("}\n{")
    assert json.loads(first + "}")["history"][1] == "\ud83d"
    assert "Amélie" in second
