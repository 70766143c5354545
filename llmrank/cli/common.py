"""What every CLI command shares: rich console, JSON output, progress bars, and turning the
library's typed exceptions into one clear line and an exit code."""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

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
    """Run the Typer app; typed library errors become one red line and an exit code."""
    try:
        app(standalone_mode=False)
    except LlmrankError as exc:
        err_console.print(f"[bold red]error:[/] {exc}")
        sys.exit(exit_code_for(exc))
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # click usage errors
        if _is_usage_error(exc):
            exc.show()  # type: ignore[attr-defined]
            sys.exit(int(exc.exit_code))  # type: ignore[attr-defined]
        raise


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
    """JSON to stdout without rich markup or wrapping (safe to pipe)."""
    sys.stdout.write(json.dumps(to_jsonable(obj), indent=2, ensure_ascii=False) + "\n")


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


def parse_key_values(pairs: Sequence[str] | None, flag: str = "--set") -> dict[str, Any]:
    """``KEY=VALUE`` flags (repeatable) as a dict; a VALUE that parses as JSON is read as
    JSON (numbers, booleans, lists), anything else stays a string."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{flag} wants KEY=VALUE, got {pair!r}")
        try:
            out[key.strip()] = json.loads(raw)
        except ValueError:
            out[key.strip()] = raw
    return out
