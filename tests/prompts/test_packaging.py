"""The templates ship inside the wheel as llmrank._prompts and load from there."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_wheel_contains_templates_and_loads_them(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps",
                    "--no-build-isolation", "-q", "-w", str(tmp_path)], check=True)
    wheel = next(tmp_path.glob("llmrank-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for t in ("rank", "explain", "explain_1_1", "chat_system"):
        assert f"llmrank/_prompts/{t}.toml" in names
    assert "llmrank/data/catalog/items.csv" in names  # the demo's embedded catalog
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = ("from llmrank.prompts import load_template as l; t = l('rank'); "
            "print(t.source)")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(site)},
                         capture_output=True, text=True, check=True).stdout
    assert out.strip().startswith(str(site / "llmrank" / "_prompts"))


def test_source_tree_templates_are_found():
    from llmrank.prompts import template_dirs

    assert any(d.resolve() == (ROOT / "prompts").resolve() for d in template_dirs())
