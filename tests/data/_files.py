"""Tiny files written into tmp_path for the data-layer tests (never copies of real data)."""

from __future__ import annotations

import gzip
from pathlib import Path


def write(path: Path, text: str | bytes, *, gz: bool = False) -> Path:
    """Write ``text`` (utf-8 unless bytes) to ``path``, gzipped when ``gz``."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        with gzip.open(path, "wb") as fh:
            fh.write(data)
    else:
        path.write_bytes(data)
    return path
