"""One config file (TOML or YAML) describes a deployment: data, retriever, reranker,
policy, feedback. Flags override it; seeds live here so every run is reproducible.

Each section is a pydantic model with defaults that run offline on this repository's
embedded catalog, so ``Config()`` alone is a working deployment."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from llmrank.config_files import problems, read_config_file, with_overrides
from llmrank.errors import ConfigError

DATA_DIR_ENV = "LLMRANK_DATA_DIR"
HOME_ENV = "LLMRANK_HOME"


def unknown_fields(cls: type, data: Mapping[str, Any]) -> list[str]:
    """Keys of ``data`` that are not fields of the dataclass ``cls``, sorted."""
    known = {f.name for f in dataclasses.fields(cls)}
    return sorted(str(k) for k in data if k not in known)


def reject_unknown_fields(cls: type, data: Mapping[str, Any], what: str) -> None:
    """ConfigError naming the keys of ``data`` that are not fields of ``cls`` (``what``: e.g.
    "retriever.options.fusion setting(s)"): a misspelt setting must fail, not silently fit
    the defaults the user meant to change."""
    unknown = unknown_fields(cls, data)
    if unknown:
        known = sorted(f.name for f in dataclasses.fields(cls))
        raise ConfigError(f"unknown {what}: {', '.join(unknown)}; known: {', '.join(known)}")


def llmrank_home() -> Path:
    """Where converted models, indexes and caches live (``$LLMRANK_HOME`` or ~/.cache/llmrank).
    ``~`` is expanded (a quoted value reaches us unexpanded) and an empty value means unset:
    ``Path("")`` is the working directory."""
    value = os.environ.get(HOME_ENV, "").strip()
    return Path(value).expanduser() if value else Path.home() / ".cache" / "llmrank"


def expand_home(path: str | None) -> str | None:
    """A path setting with a leading ``~`` expanded: TOML and YAML strings and quoted ``--set``
    values reach us unexpanded, and ``[feedback] path = "~/fb.sqlite"`` made a folder named
    '~' in the working directory."""
    return os.path.expanduser(path) if path else path


_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def check_device(device: str) -> str:
    """A device setting torch can place a model on (auto, cpu, cuda, cuda:N, mps); another
    name is refused when the config loads: torch's RuntimeError for it came once the data and
    the model were loaded, as a traceback."""
    if not _DEVICE.fullmatch(device):
        raise ValueError(f"unknown device {device!r}; use auto, cpu, cuda, cuda:N or mps")
    return device


class _Section(BaseModel):
    """Unknown keys and out-of-range numbers are ConfigErrors when the config is loaded, not a
    clamp or a ValueError deep in a stage (``Field(ge=..., le=...)`` on every bounded number).
    A number given to a text field is its text: ``--set data.dataset=2024`` and YAML's
    ``dataset: 2024`` arrive as the int 2024 (``--set`` reads JSON)."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)


class DataConfig(_Section):
    """Which dataset to load and how to preprocess it."""

    dataset: str = "catalog"  # 'catalog' (embedded), 'ml-100k', 'ml-latest-small', ... or a path
    data_dir: str | None = None  # default: $LLMRANK_DATA_DIR, else ./data
    format: str | None = None  # loader name; detected from the files when None
    kcore: int = Field(default=0, ge=0)
    min_rating: float | None = None
    on_error: Literal["skip", "raise"] = "skip"
    download: bool = False  # fetch a known MovieLens release into data_dir when missing
    mapping: dict[str, Any] = Field(default_factory=dict)  # generic tables: {"user": "uid", ...}
    options: dict[str, Any] = Field(default_factory=dict)  # extra loader arguments (e.g. seed)

    _data_dir = field_validator("data_dir")(expand_home)


class EmbedderConfig(_Section):
    backend: str = "sentence-transformers"
    model: str = "default"  # 'default' = the offline all-MiniLM-L6-v2 from PyPI
    batch_size: int = Field(default=64, ge=1)
    device: str = "auto"  # 'auto' = cuda when torch sees a GPU
    cache: bool = True  # disk cache of item embeddings under $LLMRANK_HOME/embeddings

    _device = field_validator("device")(check_device)


class IndexConfig(_Section):
    backend: str = "faiss"
    kind: Literal["auto", "flat", "hnsw", "ivf"] = "auto"
    path: str | None = None
    use_gpu: bool = True  # only when faiss sees a GPU

    _path = field_validator("path")(expand_home)


class RetrieverConfig(_Section):
    kind: str = "text"  # a registered retriever: text, sequential, fused or a plugin's
    n_candidates: int = Field(default=20, ge=1)
    recency_half_life: float = Field(default=10.0, gt=0)  # in history positions, for text query vectors (inf: plain mean)
    # a trained sequential / fused index is reused through ``index.path`` (an index folder)
    # kind-specific settings: {"sequential": SequentialConfig fields, "fusion": FusionConfig fields}
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("kind")
    @classmethod
    def _registered(cls, kind: str) -> str:
        """Any kind in the retriever registry (plugins included, as ``--retriever`` offers
        them); a misspelt one is a ConfigError listing them, before any data is loaded."""
        from llmrank.registry import retrievers

        known = retrievers.names()
        if kind not in known:
            raise ValueError(f"unknown retriever kind {kind!r}; valid names: {', '.join(known)}")
        return kind


class RerankerConfig(_Section):
    enabled: bool = True
    backend: str = "transformers"
    model: str = "default"  # 'default' = SmolLM2-135M-Instruct converted from the PyPI GGUF
    adapter: str | None = None
    template: str = "rank"
    permutations: int = Field(default=1, ge=1)
    max_history: int = Field(default=20, ge=0)  # 0: no history in the prompt
    blend_retrieval: float = Field(default=0.0, ge=0.0, le=1.0)  # weight of the normalised retrieval score in the final score
    batch_size: int = Field(default=8, ge=1)
    device: str = "auto"
    dtype: str = "auto"
    strategy: Literal["tournament", "window"] = "tournament"  # more candidates than labels
    max_labels: int = Field(default=20, ge=2, le=26)  # labels per prompt (A..T); one letter each, A..Z
    max_prompt_tokens: int = Field(default=2048, ge=1)  # every backend's prompt bound; oldest history dropped first
    options: dict[str, Any] = Field(default_factory=dict)  # backend-specific settings

    _device = field_validator("device")(check_device)


class ExplainConfig(_Section):
    # 'model': the reranker's LLM writes each explanation (validated; the template sentence is
    # the fallback). 'template': only the factual template sentence, no decoding: a small
    # model's fluent text is often wrong in ways no check sees (eval/RESULTS.md section 5.3).
    source: Literal["model", "template"] = "model"
    template: str = "explain"
    max_new_tokens: int = Field(default=48, ge=1)
    # 'base': write with the base model even when the reranker has a LoRA adapter active (a
    # ranking adapter is trained to answer one label letter); 'reranker': with the adapter
    adapter: Literal["base", "reranker"] = "base"
    # a known user's history items rated below this are not evidence of taste: explanations
    # (model or template) may only say the user liked the others; None: every history item
    liked_min_rating: float | None = 4.0


class PolicyConfig(_Section):
    name: str = "greedy"
    # the prior score the policy starts from: the reranker's score of each candidate, or the LLM's
    # familiarity with each title (llmrank.llm.familiarity: one cached pass over the catalog with
    # a transformers backend), a prior that needs no interaction log (eval/RESULTS.md section 7)
    prior: Literal["rerank", "familiarity"] = "rerank"
    prior_context: str = "Here is a well-known movie:"  # familiarity: what precedes each title
    options: dict[str, Any] = Field(default_factory=dict)


class FeedbackConfig(_Section):
    backend: str = "sqlite"
    path: str | None = None

    _path = field_validator("path")(expand_home)


class ChatConfig(_Section):
    """Chat sessions (``llmrank chat``, POST /chat): the chat model that drives the tools.
    ``local`` runs the project's own chat model (Hermes tool calls) over a transformers
    model (None = share the reranker's LLM); ``openai`` talks to an OpenAI-compatible server
    such as ``vllm serve --enable-auto-tool-choice --tool-call-parser hermes``."""

    backend: Literal["local", "openai"] = "local"
    model: str | None = None  # local: HF id/path (None = the reranker's LLM); openai: served name
    base_url: str | None = None  # openai: e.g. http://127.0.0.1:8000/v1
    api_key_env: str = "OPENAI_API_KEY"  # read from the environment; 'EMPTY' when unset
    temperature: float = Field(default=0.0, ge=0.0)
    max_new_tokens: int = Field(default=256, ge=1)
    max_messages: int = Field(default=40, ge=1)  # conversation kept in the prompt (older turns dropped)
    max_sessions: int = Field(default=1000, ge=1)  # HTTP server: least recently used sessions are dropped
    catalog: str | None = None  # one line for the system prompt; default: the dataset name


class Config(_Section):
    seed: int = Field(default=0, ge=0)  # numpy's generators refuse negative seeds
    data: DataConfig = Field(default_factory=DataConfig)
    embedder: EmbedderConfig = Field(default_factory=EmbedderConfig)
    index: IndexConfig = Field(default_factory=IndexConfig)
    retriever: RetrieverConfig = Field(default_factory=RetrieverConfig)
    reranker: RerankerConfig = Field(default_factory=RerankerConfig)
    explain: ExplainConfig = Field(default_factory=ExplainConfig)
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    feedback: FeedbackConfig = Field(default_factory=FeedbackConfig)
    chat: ChatConfig = Field(default_factory=ChatConfig)

    @model_validator(mode="before")
    @classmethod
    def _empty_sections(cls, data: Any) -> Any:
        """A YAML section with every line under it commented out (``reranker:``) reads as
        None: it means that section's defaults, as an absent section does."""
        if not isinstance(data, dict):
            return data
        sections = {name for name, f in cls.model_fields.items()
                    if isinstance(f.annotation, type) and issubclass(f.annotation, _Section)}
        return {k: {} if v is None and k in sections else v for k, v in data.items()}


def load_config(source: str | Path | dict[str, Any] | Config | None = None,
                overrides: dict[str, Any] | None = None) -> Config:
    """Load a Config from a TOML/YAML file, a dict or nothing (defaults); ``overrides`` are
    dotted keys (``{"reranker.permutations": 3}``) applied on top, as flags do."""
    if isinstance(source, Config):
        raw: dict[str, Any] = source.model_dump()
    elif source is None:
        raw = {}
    elif isinstance(source, dict):
        raw = source
    else:
        raw = read_config_file(Path(source))
    raw = with_overrides(raw, overrides)
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"invalid config: {problems(exc.errors(), model=Config)}") from exc
