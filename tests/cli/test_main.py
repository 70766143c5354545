"""Packaging of the console script: ``llmrank = llmrank.cli.main:main`` must be in the wheel."""

from __future__ import annotations

from pathlib import Path

from setuptools import find_packages

import llmrank

ROOT = Path(llmrank.__file__).resolve().parent.parent


def _shipped() -> set[str]:
    # the same call as setup.py: a folder without __init__.py is silently left out
    return set(find_packages(where=str(ROOT), include=["llmrank", "llmrank.*"]))


def test_cli_package_is_shipped() -> None:
    assert "llmrank.cli" in _shipped()


def test_every_folder_with_python_modules_is_shipped() -> None:
    pkg = ROOT / "llmrank"
    folders = {p.parent for p in pkg.rglob("*.py") if "__pycache__" not in p.parts}
    names = sorted(".".join(f.relative_to(ROOT).parts) for f in folders)
    missing = [n for n in names if n not in _shipped()]
    assert not missing, f"not in the wheel (no __init__.py): {missing}"
