"""Replace a file all at once: a kill, Ctrl-C or an error midway leaves the old file (or
none), never half of a new one. Output files, rewritten batch results and their meta files
are written this way."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


@contextmanager
def atomic_write(path: Path, mode: str = "w") -> Iterator[IO[Any]]:
    """A file handle on a temporary file beside ``path`` ("w" text as UTF-8, or "wb"); when
    the block ends it is flushed to disk and renamed over ``path``, and on an error removed."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fh = open(tmp, mode, encoding=None if "b" in mode else "utf-8")  # noqa: SIM115
    try:
        with fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
