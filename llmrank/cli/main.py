"""The ``llmrank`` command. Each command group lives in its own module and maps 1:1 to a
public library function; heavy libraries are imported inside the commands, not here."""

from __future__ import annotations

import importlib

import typer

from llmrank.cli.common import run_guarded

app = typer.Typer(
    name="llmrank",
    help="LLM recommender: FAISS retrieval, one-pass LLM reranking, bandit exploration.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

# (module, group name or None for top-level commands). A group's module defines ``app``;
# a top-level module defines ``register(app)``.
_GROUPS: list[tuple[str, str | None]] = [
    ("llmrank.cli.data", "data"),
    ("llmrank.cli.index", "index"),
    ("llmrank.cli.retrieve", None),
    ("llmrank.cli.recommend", None),
    ("llmrank.cli.rerank", None),
    ("llmrank.cli.prompts", "prompts"),
    ("llmrank.cli.models", "models"),
    ("llmrank.cli.doctor", None),
    ("llmrank.cli.demo", None),
    ("llmrank.cli.eval", None),
    ("llmrank.cli.train_retriever", None),
    ("llmrank.cli.finetune", None),
    ("llmrank.cli.feedback", "feedback"),
    ("llmrank.cli.simulate", None),
    ("llmrank.cli.serve", None),
    ("llmrank.cli.chat", None),
]


def _mount() -> None:
    for module_name, group in _GROUPS:
        module = importlib.import_module(module_name)
        if group is None:
            module.register(app)
        else:
            app.add_typer(module.app, name=group)


_mount()


def main() -> None:  # console entry point with typed-error handling
    # before any command imports torch (sequential retriever, embeddings): spinning OpenMP
    # threads are several times slower on a shared CPU (llmrank.llm.cpu_threads)
    from llmrank.llm.cpu_threads import prefer_passive_openmp

    prefer_passive_openmp()
    run_guarded(app)


if __name__ == "__main__":
    main()
