"""``retriever.json``: what an index folder holds and how to rebuild or reload it.

Written last when a folder is saved, so a folder with a manifest is complete. ``kind`` picks
the class that loads it (``retrievers`` registry); ``dataset`` says where the catalog and
histories came from, so ``llmrank retrieve --user`` can reload them from the folder alone."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmrank.errors import IndexError_

if TYPE_CHECKING:
    from llmrank.config import Config, EmbedderConfig
    from llmrank.data.dataset import Dataset

MANIFEST_NAME = "retriever.json"
FORMAT = "llmrank.retriever/1"


@dataclass
class DatasetInfo:
    """Enough to reload the dataset: ``source`` is the name or path given to the loader."""

    name: str
    source: str | None = None
    data_dir: str | None = None
    kcore: int = 0
    n_items: int = 0
    n_users: int = 0
    data_config: dict[str, Any] | None = None  # the full DataConfig, to reload it exactly

    @classmethod
    def from_dataset(cls, dataset: Dataset, config: Config | None = None) -> DatasetInfo:
        """What a retriever built on ``dataset`` (loaded with ``config.data``) records."""
        data = config.data if config is not None else None
        return cls(name=dataset.name, source=data.dataset if data else None,
                   data_dir=data.data_dir if data else None, kcore=data.kcore if data else 0,
                   n_items=dataset.n_items, n_users=dataset.n_users,
                   data_config=data.model_dump(mode="json") if data else None)


@dataclass
class EmbedderInfo:
    backend: str
    model: str  # what was asked for ('default', an id or a path)
    model_id: str  # what was loaded (cache key)
    dim: int
    options: str = ""  # settings beyond the model that change vectors (Embedder.options)


def recorded_model(model: str) -> str:
    """How a manifest records an embedder model: a local folder as an absolute path (an index
    loaded from another working directory must still find it), a name or HF id as given."""
    path = Path(model).expanduser()
    return str(path.resolve()) if path.exists() else model


def recorded_embedder(manifest: RetrieverManifest,
                      settings: EmbedderConfig | None = None) -> EmbedderConfig:
    """The embedder config a loaded index uses: the backend and model its manifest records
    (they made the vectors) with the serving ``settings`` (device, batch size, cache) of the
    caller's config, else the defaults."""
    from llmrank.config import EmbedderConfig

    base = settings or EmbedderConfig()
    if manifest.embedder is None:
        return base
    return base.model_copy(update={"backend": manifest.embedder.backend,
                                   "model": manifest.embedder.model})


@dataclass
class RetrieverManifest:
    kind: str
    dim: int
    n_items: int
    dataset: DatasetInfo
    embedder: EmbedderInfo | None = None
    index: dict[str, Any] = field(default_factory=dict)  # the vector index's describe()
    settings: dict[str, Any] = field(default_factory=dict)  # kind-specific (half-life, ...)
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    llmrank_version: str = ""
    format: str = FORMAT

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RetrieverManifest:
        try:
            emb = data.get("embedder")
            return cls(
                kind=data["kind"], dim=int(data["dim"]), n_items=int(data["n_items"]),
                dataset=DatasetInfo(**data["dataset"]),
                embedder=EmbedderInfo(**emb) if emb else None,
                index=dict(data.get("index") or {}), settings=dict(data.get("settings") or {}),
                created=data.get("created", ""), llmrank_version=data.get("llmrank_version", ""),
                format=data.get("format", FORMAT),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise IndexError_(f"malformed retriever manifest: {exc}") from exc


def write_manifest(path: Path, manifest: RetrieverManifest) -> None:
    if not manifest.llmrank_version:
        from llmrank import __version__

        manifest.llmrank_version = __version__
    tmp = path / (MANIFEST_NAME + ".tmp")
    tmp.write_text(json.dumps(manifest.to_dict(), indent=2), encoding="utf-8")
    os.replace(tmp, path / MANIFEST_NAME)


def read_manifest(path: str | Path) -> RetrieverManifest:
    file = Path(path) / MANIFEST_NAME
    if not file.is_file():
        raise IndexError_(f"no retriever index at {path} (missing {MANIFEST_NAME}); "
                          "build one with `llmrank index build`")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise IndexError_(f"{file}: unreadable manifest ({exc})") from exc
    if data.get("format") != FORMAT:
        raise IndexError_(f"{file}: unsupported format {data.get('format')!r}")
    return RetrieverManifest.from_dict(data)
