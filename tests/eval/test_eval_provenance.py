"""Provenance saved with every result names the code that produced it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import llmrank
from llmrank.eval.provenance import git_state

PACKAGE = Path(llmrank.__file__).resolve().parent


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                          check=True).stdout.strip()


def test_commit_is_the_package_checkouts_not_the_working_directorys(tmp_path, monkeypatch):
    """`llmrank eval` run from inside another git repository recorded that repository's
    commit as the code's."""
    try:
        ours = _git(PACKAGE, "rev-parse", "HEAD")
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("llmrank is not imported from a git checkout")
    other = tmp_path / "other"
    other.mkdir()
    _git(other, "init", "-q")
    (other / "f").write_text("x")
    _git(other, "add", "f")
    _git(other, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "x")
    assert _git(other, "rev-parse", "HEAD") != ours
    monkeypatch.chdir(other)
    assert git_state()["commit"] == ours
