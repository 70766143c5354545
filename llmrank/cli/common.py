"""What every CLI command shares: rich console, JSON output, progress bars, and turning the
library's typed exceptions into one clear line and an exit code."""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from llmrank.config_files import NULL
from llmrank.errors import (
    ConfigError,
    DataError,
    LlmrankError,
    MissingExtraError,
    UnknownBackendError,
    UnknownItemError,
    UnknownUserError,
)

console = Console()
err_console = Console(stderr=True)

# exit codes: 1 generic library error, 2 usage/config, 3 data, 4 missing extra, 5 not found
_EXIT = [
    (MissingExtraError, 4),
    (ConfigError, 2),
    (UnknownBackendError, 2),  # a misspelt backend name in a flag or config
    (UnknownUserError, 5),
    (UnknownItemError, 5),
    (DataError, 3),
    (LlmrankError, 1),
]

JsonOpt = typer.Option(False, "--json", help="Print machine-readable JSON instead of tables.")
VerboseOpt = typer.Option(False, "--verbose", "-v", help="Show debug logs.")


def setup_logging(verbose: bool = False) -> None:
    """Warnings (or debug logs with ``--verbose``) as rich lines on stderr. Without
    ``--verbose`` the Hugging Face libraries' own bars ("Loading weights 0%|...", one per
    model) stay quiet: our commands draw their own progress. Set before those libraries are
    imported (they read it once); a value the user set wins."""
    if not verbose:
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False)],
        force=True,
    )


def exit_code_for(exc: BaseException) -> int:
    for cls, code in _EXIT:
        if isinstance(exc, cls):
            return code
    return 1


def run_guarded(app: typer.Typer) -> None:
    """Run the Typer app; typed library errors become one red line and an exit code, and
    so does an OSError (exit 1: an --out path that is a file, a folder that cannot be made). A
    command's exit code (``typer.Exit(3)``) comes back as the return value, because click
    in non-standalone mode returns it instead of raising."""
    try:
        rc = app(standalone_mode=False)
    except LlmrankError as exc:
        print_error(exc)
        sys.exit(exit_code_for(exc))
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except OSError as exc:  # the machine's, not a bug: an --out that is a file, a full disk
        print_error(describe_os_error(exc, sys.argv[1:]))
        sys.exit(1)
    except Exception as exc:  # click usage errors
        if _is_usage_error(exc):
            exc.show()  # type: ignore[attr-defined]
            sys.exit(int(exc.exit_code))  # type: ignore[attr-defined]
        raise
    if isinstance(rc, int) and not isinstance(rc, bool):
        sys.exit(rc)


def describe_os_error(exc: OSError, argv: Sequence[str]) -> str:
    """An OSError as one line that says which option (or argument) of ``argv`` it came from
    and, for a path under a file, which file is in the way: "--out small.csv/idx: Not a
    directory (small.csv is a file, not a folder)", where it was "[Errno 20] Not a directory:
    'small.csv/idx'" (or "[Errno 17] File exists: 'small.csv'"), naming neither."""
    names = [os.fsdecode(f) for f in (exc.filename2, exc.filename) if f is not None]
    if not names or not exc.strerror:
        return str(exc) or type(exc).__name__
    given = next((g for name in names for g in (_argument_for(name, argv),) if g), None)
    blocker = file_in_the_way(names[-1]) if exc.errno in (errno.ENOTDIR, errno.EEXIST) else None
    detail = f" ({blocker} is a file, not a folder)" if blocker else f": {' -> '.join(reversed(names))}"
    if given is None:
        return f"{exc.strerror}{detail}"
    flag, value = given
    return f"{flag + ' ' if flag else ''}{value}: {exc.strerror}{detail}"


def _argument_for(name: str, argv: Sequence[str]) -> tuple[str | None, str] | None:
    """(flag or None, value) of the argument whose path is ``name``, holds it or lies in it."""
    def norm(path: str) -> str:
        return os.path.normpath(os.path.abspath(os.path.expanduser(path)))

    target, found = norm(name), None
    for i, token in enumerate(argv):
        flag: str | None = None
        if token.startswith("-") and "=" in token:
            flag, _, value = token.partition("=")
        elif token.startswith("-"):
            continue
        else:
            value = token
            if i > 0 and argv[i - 1].startswith("-") and "=" not in argv[i - 1]:
                flag = argv[i - 1]
        if not value:
            continue
        path = norm(value)
        if path == target:
            return flag, value
        if found is None and (path.startswith(target + os.sep) or target.startswith(path + os.sep)):
            found = (flag, value)
    return found


def file_in_the_way(name: str) -> str | None:
    """The first part of ``name`` that exists and is not a folder (``name`` itself included)."""
    path = Path(name)
    for part in (*reversed(path.parents), path):
        if str(part) in ("", ".") or not part.exists():
            continue
        if not part.is_dir():
            return str(part)
    return None


def plain(value: object) -> str:
    """``value`` as literal rich text. Titles, ids, paths and messages are data: rich would
    read ``[bold]`` in them as markup and fail on a stray ``[/path]``."""
    return escape(str(value))


def print_error(message: object) -> None:
    """One red ``error:`` line on stderr. The message is escaped: it holds user and
    exception text, where rich would read ``[gpu]`` or ``[/path]`` as markup and drop it.
    ``soft_wrap``: rich broke a long message at 80 columns when stderr is not a terminal,
    and a script reading stderr got several lines."""
    err_console.print(f"[bold red]error:[/] {escape(str(message))}", highlight=False, soft_wrap=True)


def print_warning(message: object) -> None:
    """One yellow ``warning:`` line on stderr, escaped as ``print_error`` is."""
    err_console.print(f"[yellow]warning:[/] {escape(str(message))}", highlight=False, soft_wrap=True)


def exit_if_nothing_succeeded(succeeded: int, failed: int, what: str) -> None:
    """Exit 3 (data) when every input failed: a script must not read a job that did nothing
    as done. Call it after the report is printed, so the report is still shown."""
    if succeeded == 0 and failed > 0:
        print_error(f"{failed} {what} failed and none succeeded")
        raise typer.Exit(3)


def _is_usage_error(exc: BaseException) -> bool:
    """Click's usage errors, whichever click raised them: typer >= 0.29 vendors its own copy
    (``typer._click``), so an isinstance check against the ``click`` package misses them."""
    return any(cls.__name__ == "ClickException" for cls in type(exc).__mro__) and hasattr(exc, "show")


def to_jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(dataclasses.asdict(obj))
    if hasattr(obj, "model_dump"):
        return to_jsonable(obj.model_dump())
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return obj


def print_json(obj: Any) -> None:
    """JSON to stdout without rich markup or wrapping (safe to pipe), encodable as UTF-8
    (``llmrank.jsontext``)."""
    from llmrank.jsontext import dumps

    sys.stdout.write(dumps(to_jsonable(obj), indent=2) + "\n")


@contextmanager
def progress_bar(enabled: bool = True) -> Iterator[Progress]:
    """A rich progress bar on stderr (kept off stdout so --json output stays clean)."""
    progress = Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        disable=not enabled,
        transient=False,
    )
    with progress:
        yield progress


class WrittenFloat(float):
    """A float read from a ``KEY=VALUE`` flag that keeps the text it was written as: a text
    field takes that text (pydantic makes a number a str with ``str()``), so ``--set
    reranker.adapter=1.10`` names the adapter '1.10', not '1.1' (nor '1e3' '1000.0', 'NaN'
    'nan'); a number field gets the number. A copy is the same object and a pickle a plain
    float (the text matters only until the config is validated)."""

    text: str

    def __new__(cls, text: str) -> WrittenFloat:
        self = super().__new__(cls, text)
        self.text = text
        return self

    def __str__(self) -> str:
        return self.text

    __repr__ = float.__repr__

    def __reduce__(self) -> tuple[type, tuple[float]]:
        return float, (float(self),)

    def __deepcopy__(self, memo: dict[int, Any]) -> WrittenFloat:
        return self


def _written_float(text: str) -> float:
    """A JSON float, as a WrittenFloat only where ``str()`` would not give its text back."""
    value = float(text)
    return value if str(value) == text else WrittenFloat(text)


def parse_key_values(pairs: Sequence[str] | None, flag: str = "--set") -> dict[str, Any]:
    """``KEY=VALUE`` flags (repeatable) as a dict; a VALUE that parses as JSON is read as
    JSON (numbers, booleans, lists), anything else stays a string. For ``--set`` (config
    overrides) ``null`` becomes ``NULL``, so it clears the key: a plain None is how an
    absent flag reads, and overrides skip it."""
    null: Any = NULL if flag == "--set" else None
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{flag} wants KEY=VALUE, got {pair!r}")
        try:
            value = json.loads(raw, parse_float=_written_float, parse_constant=WrittenFloat)
        except ValueError:
            value = raw
        out[key.strip()] = null if value is None else value
    return out
