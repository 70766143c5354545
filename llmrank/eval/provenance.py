"""Who/what/when of a run: package versions, git commit, machine, timestamps. Users most
often cannot reproduce published numbers; this is saved next to every number."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("llmrank", "numpy", "scipy", "implicit", "ranx", "torch", "transformers",
            "sentence-transformers", "faiss-cpu", "matplotlib")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Installed versions (metadata only: nothing is imported)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for p in packages:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = None
    return out


def git_state(cwd: Path | None = None) -> dict[str, Any]:
    """Commit and whether the work tree had uncommitted changes, of the checkout llmrank is
    imported from (``cwd`` to ask another); None when that is not a git work tree (an
    installed package). Not the working directory's: a run started inside another repository
    recorded that repository's commit as the code's."""
    where = cwd or Path(__file__).resolve().parent

    def run(*args: str) -> str | None:
        try:
            res = subprocess.run(["git", *args], cwd=where, capture_output=True,
                                 text=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return res.stdout.strip() if res.returncode == 0 else None

    commit = run("rev-parse", "HEAD")
    dirty = run("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(dirty) if dirty is not None else None}


def machine() -> dict[str, Any]:
    return {"platform": platform.platform(), "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine()}
