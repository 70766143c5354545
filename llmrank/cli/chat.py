"""``llmrank chat``: a recommendation conversation in the terminal (or one turn with --once).

The chat model comes from the config's [chat] section: the project's own local model with
Hermes tool calls by default, or an OpenAI-compatible server (vllm serve)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from llmrank.cli.common import JsonOpt, VerboseOpt, console, print_error, print_json, setup_logging

if TYPE_CHECKING:
    from llmrank.chat.session import ChatSession, ChatTurn

ConfigOpt = typer.Option(None, "--config", "-c", help="TOML/YAML deployment config.")
_QUIT = {"/quit", "/exit", ":q"}
log = logging.getLogger(__name__)


def turn_json(turn: ChatTurn) -> dict[str, Any]:
    return {"session_id": turn.session_id, "answer": turn.answer, "item_ids": turn.item_ids,
            "items": [{"item_id": i, "title": turn.titles.get(i, ""), "request_id": turn.request_ids.get(i)}
                      for i in turn.item_ids],
            "tool_calls": [{"name": c.name, "args": c.args, "ok": c.ok, "error": c.error}
                           for c in turn.tool_calls],
            "rejected_ids": turn.rejected_ids, "notes": turn.notes}


def show_turn(turn: ChatTurn) -> None:
    from rich.markup import escape
    from rich.table import Table

    for c in turn.tool_calls:
        mark = "[green]✓[/]" if c.ok else f"[red]✗ {escape(c.error or '')}[/]"
        console.print(f"[dim]tool {escape(c.name)}({escape(str(c.args))})[/] {mark}")
    console.print(f"[bold cyan]llmrank:[/] {escape(turn.answer) or '[dim](no answer)[/]'}")
    if turn.item_ids:
        table = Table(show_header=True, header_style="bold", box=None)
        table.add_column("#")
        table.add_column("item")
        table.add_column("title")
        for n, i in enumerate(turn.item_ids, 1):
            table.add_row(str(n), escape(i), escape(turn.titles.get(i, "")))
        console.print(table)
    if turn.rejected_ids:
        console.print(f"[yellow]ignored ids no tool returned: {escape(', '.join(turn.rejected_ids))}[/]")


def _repl(session: ChatSession) -> None:
    from rich.prompt import Prompt

    from llmrank.errors import LlmrankError

    console.print("[dim]Ask for recommendations; /quit to leave.[/]")
    while True:
        try:
            message = Prompt.ask("[bold]you[/]", console=console).strip()
        except (EOFError, KeyboardInterrupt):
            console.print()
            return
        if message in _QUIT:
            return
        if not message:
            continue
        try:
            show_turn(session.send(message))
        except KeyboardInterrupt:  # Ctrl-C stops this turn (a slow model), not the conversation
            console.print("[dim]turn interrupted (Ctrl-D or /quit to leave)[/]")
        except LlmrankError as exc:
            print_error(exc)
        except Exception as exc:  # e.g. the chat server dropped: keep the conversation
            log.debug("chat turn failed", exc_info=exc)
            print_error(f"{type(exc).__name__}: {exc}")


def chat(
    user: str | None = typer.Option(None, "--user", "-u", help="User id (their history steers recommendations)."),
    config: Path | None = ConfigOpt,
    once: str | None = typer.Option(None, "--once", help="Send one message, print the answer and exit."),
    json_out: bool = JsonOpt,
    verbose: bool = VerboseOpt,
) -> None:
    """Chat with the recommender: it searches, recommends, explains and records feedback."""
    from llmrank._optional import require

    if json_out and once is None:  # before minutes of loading
        raise typer.BadParameter("--json needs --once (the interactive chat prints tables)")
    setup_logging(verbose)
    require("langchain", extra="chat")
    from llmrank.chat.factory import make_chat_model
    from llmrank.chat.session import ChatSession
    from llmrank.errors import LlmrankError
    from llmrank.recommender import Recommender

    rec = Recommender.from_config(config, progress=not json_out)
    cfg = rec.config.chat
    model = make_chat_model(cfg, rec, seed=rec.config.seed)
    session = ChatSession(rec, model, user_id=user, max_messages=cfg.max_messages, catalog=cfg.catalog)
    if once is not None:
        try:
            turn = session.send(once)
        except LlmrankError:
            raise  # one line and its own exit code (run_guarded)
        except Exception as exc:  # e.g. the chat server is down: one line, as in the loop
            log.debug("chat turn failed", exc_info=exc)
            print_error(f"{type(exc).__name__}: {exc}")
            raise typer.Exit(1) from exc
        if json_out:
            print_json(turn_json(turn))
        else:
            show_turn(turn)
        return
    _repl(session)


def register(app: typer.Typer) -> None:
    app.command("chat")(chat)
