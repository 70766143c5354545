"""Helpers of the batch tests (a uniquely named module so test files can import it): the
small deployment config, request files with known bad lines, and output readers."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
CFG: dict[str, Any] = {"reranker": {"backend": "fake"}, "embedder": {"backend": "hashing", "cache": False}}

GOOD = [
    {"user_id": "u001", "k": 3},
    {"user_id": "u002", "k": 2, "explain": True},
    {"text": "rocket space adventure", "k": 3, "request_id": "text-1"},
    {"history": ["c001", "c002"], "k": 2, "filters": {"deny": ["c003"]}},
    {"user_id": "u003", "candidates": ["c010", "c011", "c012", "ghost"], "k": 3},
    {"user_id": "u004", "k": 4},
    {"user_id": "u005", "k": 1},
    {"user_id": "u006", "k": 2},
]


def write_requests(path: Path, rows: list[Any]) -> Path:
    """Rows are dicts (written as JSON) or raw strings (written as they are)."""
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write((row if isinstance(row, str) else json.dumps(row)) + "\n")
    return path


def read_out(path: Path) -> dict[int, dict[str, Any]]:
    """Output lines by input line number, without the timing-dependent trace."""
    out: dict[int, dict[str, Any]] = {}
    with open(path, encoding="utf-8") as fh:
        for text in fh:
            rec = json.loads(text)
            assert rec["line"] not in out, f"line {rec['line']} written twice"
            rec.pop("trace", None)
            out[rec["line"]] = rec
    return out
