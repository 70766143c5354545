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


def _help_texts(command: object, path: str) -> list[tuple[str, str]]:
    """Every help text, short help and metavar of a command and its subcommands."""
    texts = [(path, getattr(command, attr, None) or "") for attr in ("help", "short_help", "epilog")]
    for param in getattr(command, "params", []):
        texts += [(f"{path} {param.name}", getattr(param, "help", None) or ""),
                  (f"{path} {param.name} metavar", getattr(param, "metavar", None) or "")]
    for name, sub in getattr(command, "commands", {}).items():
        texts += _help_texts(sub, f"{path} {name}")
    return texts


def test_no_help_text_holds_what_rich_reads_as_markup() -> None:
    """Typer renders help as rich markup: "[data]" in a help string vanished from --help."""
    import typer
    from rich.markup import RE_TAGS

    from llmrank.cli.main import app

    tagged = [(where, text) for where, text in _help_texts(typer.main.get_command(app), "llmrank")
              if any(not m.group(2) for m in RE_TAGS.finditer(text))]  # group 2: escaping backslashes
    assert not tagged, tagged


def test_data_convert_help_names_the_data_section() -> None:
    from typer.testing import CliRunner

    from llmrank.cli.main import app

    result = CliRunner().invoke(app, ["data", "convert", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "config whose data section" in " ".join(result.output.split())


def test_the_cli_sets_the_passive_openmp_policy_before_any_command_loads_torch() -> None:
    """Only importing llmrank.llm set it, so a command whose first torch user was the
    sequential retriever or the embedder ran with spinning OpenMP threads (several times
    slower on a shared CPU). The check runs the entry point in a clean process."""
    import os
    import subprocess
    import sys

    code = ("import os, sys; sys.argv = ['llmrank', '--help']\n"
            "from llmrank.cli.main import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print('POLICY=' + os.environ.get('OMP_WAIT_POLICY', ''))")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120, check=True).stdout
    assert "POLICY=PASSIVE" in out
