"""Evaluation config: one TOML/YAML file = one reproducible experiment (data + preprocessing,
protocol, rankers, seed, output). Validated with pydantic (unknown keys are errors, so a
typo cannot silently change a protocol); CLI flags override fields.

Example (eval/configs/ml-small-full.toml)::

    name = "ml-small-full"
    seed = 0
    [data]
    dataset = "ml-latest-small"
    kcore = 5
    [protocol]
    name = "full"
    [[rankers]]
    name = "most-popular"
    [[rankers]]
    name = "itemknn"
    options = { neighbors = 100 }
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from llmrank.config_files import problems, read_config_file, with_overrides
from llmrank.errors import ConfigError

DATASETS_ENV = "LLMRANK_DATA_DIR"
ProtocolName = Literal["full", "candidates", "retriever"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)  # --set name=2024 is a name


class EvalData(_Model):
    """Dataset and preprocessing. Order: min_rating filter, then k-core, then leave-one-out
    by (timestamp, file order) -- the tie rule for equal timestamps."""

    dataset: str = "ml-latest-small"  # a folder name under data_dir, a path, or 'catalog'
    data_dir: str | None = None  # default: $LLMRANK_DATA_DIR, else ../shared/datasets
    format: str | None = None  # loader name (movielens, amazon, recbole, csv, ...); detected when None
    kcore: int = Field(default=0, ge=0)
    min_rating: float | None = None

    def preprocessing(self) -> dict[str, Any]:
        return {
            "min_rating": self.min_rating,
            "kcore": self.kcore,
            "split": "leave-one-out by timestamp (ties: file order); last=test, "
                     "second-to-last=validation; test history includes the validation item",
        }


class EvalProtocol(_Model):
    name: ProtocolName = "full"
    stage: Literal["valid", "test"] = "test"
    ks: list[int] = Field(default_factory=lambda: [1, 5, 10, 20])
    ties: Literal["pessimistic", "optimistic", "random"] = "pessimistic"
    n_negatives: int = Field(default=19, ge=1)  # candidates protocol
    retriever: str | None = None  # retriever protocol: label of the ranker that proposes
    n_retrieve: int = Field(default=20, ge=1)  # retriever protocol: N
    list_len: int = Field(default=20, ge=1)  # items per user kept in run files
    beyond_k: int = Field(default=10, ge=1)  # list length for coverage / diversity / novelty / popularity
    max_users: int | None = Field(default=None, ge=1)  # evaluate the first N eligible users (quick runs)

    @model_validator(mode="after")
    def _check(self) -> EvalProtocol:
        if self.name == "retriever" and not self.retriever:
            raise ValueError("protocol 'retriever' needs protocol.retriever (a ranker label)")
        if not self.ks or min(self.ks) < 1:
            raise ValueError("ks must be positive integers")
        if self.beyond_k > self.list_len:
            # beyond-accuracy metrics read the lists kept per user (list_len items): a longer
            # beyond_k would label top-list_len numbers '@beyond_k'
            raise ValueError(f"beyond_k ({self.beyond_k}) must not exceed list_len "
                             f"({self.list_len}), the items kept per user; raise list_len")
        return self


class RankerSpec(_Model):
    """A ranker from the ``rankers`` registry, its constructor options and a display label
    (defaults to the name; two configurations of one ranker need distinct labels)."""

    name: str
    label: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)

    @property
    def display(self) -> str:
        return self.label or self.name


class EvalRun(_Model):
    workers: int = Field(default=1, ge=1)
    shard_size: int = Field(default=64, ge=1)
    out: str | None = None  # default eval/out/<name>
    reference: str | None = None  # label compared against every other ranker (paired test)
    paired_method: Literal["permutation", "t"] = "permutation"
    diversity_vectors: str = "genres"  # 'genres', 'text', 'none', or 'npy:<path>' (n_items x d)
    plots: bool = True


class EvalConfig(_Model):
    name: str = "eval"
    seed: int = Field(default=0, ge=0)  # numpy's generators refuse negative seeds
    data: EvalData = Field(default_factory=EvalData)
    protocol: EvalProtocol = Field(default_factory=EvalProtocol)
    rankers: list[RankerSpec] = Field(default_factory=lambda: [RankerSpec(name="random")], min_length=1)
    run: EvalRun = Field(default_factory=EvalRun)

    @model_validator(mode="after")
    def _unique_labels(self) -> EvalConfig:
        labels = [r.display for r in self.rankers]
        if len(set(labels)) != len(labels):
            raise ValueError(f"ranker labels must be unique, got {labels}")
        return self

    @model_validator(mode="after")
    def _reference_is_a_ranker(self) -> EvalConfig:
        """Checked at load: run_eval found it out only after evaluating every ranker."""
        labels = [r.display for r in self.rankers]
        if self.run.reference is not None and self.run.reference not in labels:
            raise ValueError(f"run.reference {self.run.reference!r} is not among the rankers {labels}")
        return self

    def out_dir(self) -> Path:
        return Path(self.run.out or Path("eval") / "out" / self.name)

    def fingerprint(self, ranker: RankerSpec, data_digest: str = "") -> str:
        """What must not change between an interrupted run and its resume: everything that
        affects one ranker's per-user results (not workers, out dir, plots or reference).
        ``data_digest`` (PreparedData.digest) covers the data itself, not only its name."""
        payload = {
            "seed": self.seed, "data": self.data.model_dump(), "data_digest": data_digest,
            "protocol": self.protocol.model_dump(), "ranker": ranker.model_dump(),
            "shard_size": self.run.shard_size,
        }
        if self.protocol.name == "retriever":
            payload["retriever"] = self.ranker(self.protocol.retriever or "").model_dump()
        blob = json.dumps(payload, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def ranker(self, label: str) -> RankerSpec:
        for r in self.rankers:
            if r.display == label:
                return r
        raise ConfigError(f"no ranker labelled {label!r}; labels: {[r.display for r in self.rankers]}")


def data_root(cfg: EvalData) -> Path:
    if cfg.data_dir:
        return Path(cfg.data_dir)
    env = os.environ.get(DATASETS_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "shared" / "datasets"


def load_eval_config(source: str | Path | dict[str, Any] | None = None,
                     overrides: dict[str, Any] | None = None) -> EvalConfig:
    """Read a config file (or dict); ``overrides`` are dotted keys as CLI flags give them
    (``{"protocol.name": "candidates", "run.workers": 2}``); None values are ignored."""
    if source is None:
        raw: dict[str, Any] = {}
    elif isinstance(source, dict):
        raw = source
    else:
        raw = read_config_file(Path(source), "eval config")
    raw = with_overrides(raw, overrides)
    try:
        return EvalConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"invalid eval config: {problems(exc.errors())}") from exc
