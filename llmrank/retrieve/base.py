"""Retriever interfaces: a request in, scored candidates out (dataset ids).

``Retriever`` is what the pipeline calls. ``PersistentRetriever`` is what the index-folder
store (llmrank.retrieve.store) needs to build, save and load a retriever by its ``kind``
(the ``retrievers`` registry name): text, sequential and fused retrievers all implement it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from llmrank.records import Candidate, Filters

if TYPE_CHECKING:
    from llmrank.config import Config
    from llmrank.data.dataset import Dataset
    from llmrank.retrieve.manifest import RetrieverManifest

# progress(stage, done, total): drives CLI progress bars from library code without rich.
ProgressFn = Callable[[str, int, int], None]


def no_progress(stage: str, done: int, total: int) -> None:
    """The default ProgressFn: report nothing."""


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


@runtime_checkable
class PersistentRetriever(Retriever, Protocol):
    """A retriever that lives in an index folder (see llmrank.retrieve.store)."""

    kind: str  # registry name, written to the manifest

    @classmethod
    def build(cls, dataset: Dataset, config: Config, *, progress: ProgressFn = no_progress,
              **kwargs: Any) -> PersistentRetriever:
        """Embed/train on ``dataset`` and index its items."""
        ...

    def save(self, path: Path) -> RetrieverManifest:
        """Write the kind's own files into ``path`` (a folder the store created) and return
        the manifest the store writes last as ``retriever.json``."""
        ...

    @classmethod
    def load(cls, path: Path, manifest: RetrieverManifest, **kwargs: Any) -> PersistentRetriever:
        ...

    def retrieve_many(
        self,
        histories: Sequence[Sequence[str]],
        *,
        k: int = 20,
        filters: Filters | None = None,
    ) -> list[list[Candidate]]:
        """Batched ``retrieve`` over many histories (one index search for all of them)."""
        ...
