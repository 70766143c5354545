"""Retriever interface: a request in, scored candidates out (dataset ids)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from llmrank.records import Candidate, Filters


@runtime_checkable
class Retriever(Protocol):
    name: str

    def retrieve(
        self,
        *,
        history: list[str] | None = None,
        text: str | None = None,
        k: int = 20,
        filters: Filters | None = None,
    ) -> list[Candidate]:
        """Top-k candidates for a user history (time-ordered item ids) or free text. Items in
        the history are excluded when ``filters.exclude_seen`` (the default)."""
        ...
