"""Reading config files and applying dotted overrides: one implementation for the pipeline
config, eval configs and finetune recipes, so they accept the same formats and flags."""

from __future__ import annotations

import copy
import functools
import io
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from llmrank.errors import ConfigError


class _Null:
    """The type of ``NULL``, shown as ``null`` as JSON and YAML write it; copies stay the
    same object, so ``value is NULL`` holds after a deep copy."""

    def __repr__(self) -> str:
        return "null"

    def __deepcopy__(self, memo: dict[int, Any]) -> _Null:
        return self


def problems(errors: Iterable[Mapping[str, Any]], limit: int = 5, model: type | None = None) -> str:
    """Pydantic's errors as one line, ``key: message (got value)`` joined by '; ': the CLI
    promises one line and an exit code, and pydantic's own text spans lines and links. With
    ``model`` (the validated pydantic model), an unknown key lists the valid ones of its
    section: "Extra inputs are not permitted" left the user to guess the spelling."""
    errors = list(errors)
    parts = [_unknown_key(e, model) or _problem(e) for e in errors[:limit]]
    if len(errors) > limit:
        parts.append(f"{len(errors) - limit} more")
    return "; ".join(parts)


_UNKNOWN_KEY = ("extra_forbidden", "unexpected_keyword_argument")  # the value is beside the point


def _unknown_key(error: Mapping[str, Any], model: type | None) -> str | None:
    """``key: unknown key (valid: ...)`` for an extra_forbidden error under ``model``; None
    when it is another error or its section is not a pydantic model."""
    loc = tuple(error.get("loc", ()))
    if model is None or error.get("type") != "extra_forbidden" or not loc:
        return None
    section: Any = model
    for part in loc[:-1]:
        fields = getattr(section, "model_fields", None)
        if not isinstance(fields, dict) or part not in fields:
            return None
        section = fields[part].annotation
    fields = getattr(section, "model_fields", None)
    if not isinstance(fields, dict):
        return None
    return f"{'.'.join(str(p) for p in loc)}: unknown key (valid: {', '.join(sorted(fields))})"


def _problem(error: Mapping[str, Any]) -> str:
    where = ".".join(str(p) for p in error.get("loc", ()))
    msg = str(error.get("msg", "")).removeprefix("Value error, ").replace("\n", " ")
    value = error.get("input")
    shown = repr(value) if isinstance(value, (int, float, str, bool)) else ""
    got = f" (got {shown[:40]})" if shown and error.get("type") not in _UNKNOWN_KEY else ""
    return f"{where}: {msg}{got}" if where else f"{msg}{got}"


# An override that sets its key to None (``--set reranker.adapter=null``); a plain None in
# overrides means "flag not given" and is skipped.
NULL = _Null()


def read_config_file(path: Path, what: str = "config file") -> dict[str, Any]:
    """A mapping from a ``.toml``, ``.yaml`` or ``.yml`` file; ConfigError names the file
    (also for unreadable, non-UTF-8 or malformed files: never a traceback)."""
    if not path.is_file():
        raise ConfigError(f"{what} not found: {path}")
    if path.suffix not in (".toml", ".yaml", ".yml"):
        raise ConfigError(f"{path}: {what} must be .toml, .yaml or .yml")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: {what} is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what}: {exc.strerror or exc}") from exc
    if path.suffix == ".toml":
        return _parse_toml(path, text)
    return _parse_yaml(path, text)


def _parse_toml(path: Path, text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def _parse_yaml(path: Path, text: str) -> dict[str, Any]:
    import yaml

    stream = io.StringIO(text)
    stream.name = path.name  # yaml names the file in its error marks
    try:
        data = yaml.load(stream, Loader=_unique_key_loader())  # a SafeLoader subclass
    except yaml.YAMLError as exc:  # not a ValueError: it escaped as a traceback before
        where = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        raise ConfigError(f"{path}: malformed YAML: {where}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    return data


@functools.cache
def _unique_key_loader() -> type:
    """yaml's SafeLoader, except that a key given twice in one mapping is an error: plain
    YAML keeps the last, so a second ``reranker:`` section silently dropped the first
    (TOML refuses it). Merge keys (``<<: *base``) still override as YAML defines."""
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    if key in seen:
                        raise yaml.constructor.ConstructorError(
                            None, None, f"{key!r} given twice", key_node.start_mark)
                    seen.add(key)
                except TypeError:  # an unhashable key: SafeLoader reports it
                    pass
            return super().construct_mapping(node, deep=deep)

    return UniqueKeyLoader


def with_overrides(raw: dict[str, Any], overrides: dict[str, Any] | None) -> dict[str, Any]:
    """A deep copy of ``raw`` with dotted keys (``{"reranker.permutations": 3}``) set, as CLI
    flags give them; None values (flags not given) are skipped and ``NULL`` sets the key to
    None. The caller's dict is never modified."""
    data = copy.deepcopy(raw)
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            if node.get(key) is None:  # absent, or a YAML section left empty (``reranker:``)
                node[key] = {}
            node = node[key]
            if not isinstance(node, dict):
                raise ConfigError(f"override {dotted!r}: {key!r} is not a section")
        node[leaf] = None if value is NULL else value
    return data
