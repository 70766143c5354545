"""Where templates live and how a name becomes a PromptTemplate.

Search order: directories in ``$LLMRANK_PROMPTS_DIR`` (os.pathsep-separated, a user's own
templates win), then the templates shipped inside the wheel (``llmrank._prompts``, mapped from
the top-level ``prompts/`` folder by the build config), then the source tree's ``prompts/``
(editable installs and checkouts, where ``llmrank._prompts`` does not exist).

A name is ``rank`` (highest version found) or ``rank@1.0.0`` (exactly that version); a path
to a ``.toml`` file is loaded directly."""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from llmrank.errors import PromptError
from llmrank.prompts.template import PromptTemplate

log = logging.getLogger(__name__)

PROMPTS_DIR_ENV = "LLMRANK_PROMPTS_DIR"
_SOURCE_TREE = Path(__file__).resolve().parents[2] / "prompts"


def template_dirs() -> list[Path]:
    """Template folders in search order (only those that exist). The source tree is searched
    only where the wheel's templates are absent: installed, ``_SOURCE_TREE`` is
    site-packages/prompts, which belongs to some other distribution."""
    dirs = [Path(p) for p in os.environ.get(PROMPTS_DIR_ENV, "").split(os.pathsep) if p]
    packaged = _packaged_dirs()
    dirs += packaged or [_SOURCE_TREE]
    seen: list[Path] = []
    for d in dirs:
        if d.is_dir() and d.resolve() not in [s.resolve() for s in seen]:
            seen.append(d)
    return seen


def _packaged_dirs() -> list[Path]:
    """Folders of the data package ``llmrank._prompts`` (a namespace package: no __init__)."""
    try:
        spec = importlib.util.find_spec("llmrank._prompts")
    except (ImportError, ValueError):
        return []
    if spec is None or not spec.submodule_search_locations:
        return []
    return [Path(p) for p in spec.submodule_search_locations]


def _iter_files() -> Iterator[Path]:
    for d in template_dirs():
        yield from sorted(d.glob("*.toml"))


def _version_key(version: str) -> tuple[Any, ...]:
    """'1.10.0' > '1.9.2'; non-numeric parts compare as text after numbers; a pre-release
    ('2.0.0-rc1') sorts below its release ('2.0.0'), as in semver, so it is not the default."""
    release, dash, pre = version.partition("-")

    def parts(text: str) -> tuple[tuple[int, int | str], ...]:
        return tuple((0, int(p)) if p.isdecimal() else (1, p) for p in text.split("."))

    return (parts(release), (0, parts(pre)) if dash else (1, ()))


@functools.lru_cache(maxsize=256)
def _parse(path: str, mtime_ns: int) -> PromptTemplate:
    """Parsed once per file version: templates are immutable, checks cost Jinja parsing."""
    del mtime_ns  # part of the cache key only
    return PromptTemplate.from_file(path)


def list_templates() -> list[PromptTemplate]:
    """Every loadable template, first found wins for the same name@version, sorted."""
    found: dict[str, PromptTemplate] = {}
    for path in _iter_files():
        try:
            tmpl = _parse(str(path), path.stat().st_mtime_ns)
        except (PromptError, OSError) as exc:  # OSError: e.g. a dangling symlink
            log.warning("skipping invalid template %s: %s", path, exc)
            continue
        found.setdefault(tmpl.id, tmpl)
    return sorted(found.values(), key=lambda t: (t.name, _version_key(t.version)))


def load_template(name: str | Path) -> PromptTemplate:
    """Load by name (``rank``, ``rank@1.0.0``) or by path to a ``.toml`` file."""
    text = str(name)
    if text.endswith(".toml") or os.sep in text:
        return PromptTemplate.from_file(Path(text))
    base, _, version = text.partition("@")
    matches = [t for t in list_templates() if t.name == base and (not version or t.version == version)]
    if not matches:
        known = sorted({t.id for t in list_templates()})
        raise PromptError(f"no prompt template {text!r}; known: {', '.join(known) or '(none)'}")
    # first found wins among equal versions (user dirs come first); highest version otherwise
    best = max(matches, key=lambda t: _version_key(t.version))
    return best
