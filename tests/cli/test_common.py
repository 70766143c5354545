"""The console entry point turns usage errors into a message and exit code 2, not a traceback."""

from __future__ import annotations

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
