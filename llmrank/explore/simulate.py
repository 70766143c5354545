"""``simulate(config)``: the library function behind ``llmrank simulate``. A simulation config
(TOML/YAML) names the data, the replay protocol, the prior and the policies to compare:

    seed = 0
    [data]
    dataset = "ml-100k"
    [replay]
    k = 10
    n_candidates = 100
    max_steps = 20000
    [prior]
    kind = "itemknn"            # itemknn | popularity | ranker:<name in llmrank.registry.rankers>
                                # | familiarity (the LLM's familiarity with each title; options:
                                #   model, cache_dir) | itemknn>familiarity (kNN pool, LLM scores)
    [[policies]]
    label = "thompson"
    name = "thompson"
    options = { prior_strength = 20 }
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llmrank.config import DataConfig, reject_unknown_fields
from llmrank.config_files import problems, read_config_file
from llmrank.errors import ConfigError
from llmrank.explore.replay import PolicySpec, ReplayConfig, ReplayResult


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PolicyEntry(_Model):
    label: str
    name: str
    options: dict[str, Any] = Field(default_factory=dict)


class PriorConfig(_Model):
    kind: str = "itemknn"
    options: dict[str, Any] = Field(default_factory=dict)


def _default_policies() -> list[PolicyEntry]:
    return [PolicyEntry(label=n, name=n) for n in ("greedy", "egreedy", "thompson", "linucb")]


class SimulateConfig(_Model):
    seed: int = Field(default=0, ge=0)  # numpy refuses a negative seed (a traceback mid-run)
    data: DataConfig = Field(default_factory=lambda: DataConfig(dataset="ml-100k"))
    replay: dict[str, Any] = Field(default_factory=dict)  # ReplayConfig fields
    prior: PriorConfig = Field(default_factory=PriorConfig)
    policies: list[PolicyEntry] = Field(default_factory=_default_policies)
    out: str | None = None

    def replay_config(self) -> ReplayConfig:
        reject_unknown_fields(ReplayConfig, self.replay, "[replay] key(s)")
        seed = self.replay.get("seed", self.seed)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ConfigError(f"[replay] seed must be an integer >= 0, got {seed!r}")
        return ReplayConfig(**{"seed": self.seed, **self.replay})

    def select(self, names: Sequence[str] | None) -> list[PolicySpec]:
        """Policies by label from the config; a name not in the config is a registry name with
        default options."""
        entries = {p.label: p for p in self.policies}
        chosen = [entries.get(n) or PolicyEntry(label=n, name=n) for n in names] if names else self.policies
        return [PolicySpec(p.label, p.name, dict(p.options)) for p in chosen]


def load_simulate_config(path: str | Path | None) -> SimulateConfig:
    if path is None:
        return SimulateConfig()
    path = Path(path)
    raw = read_config_file(path, "simulation config")  # a ConfigError for any unreadable file
    try:
        return SimulateConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"invalid simulation config {path}: {problems(exc.errors())}") from exc


def make_prior(cfg: PriorConfig) -> Any:
    from llmrank.explore.priors import (
        FamiliarityPrior,
        ItemKNNPrior,
        PopularityPrior,
        RankerPrior,
        TwoStagePrior,
    )

    if cfg.kind == "itemknn":
        return ItemKNNPrior(**cfg.options)
    if cfg.kind == "popularity":
        return PopularityPrior()
    if cfg.kind == "familiarity":  # the LLM's familiarity with each title, for every user alike
        return FamiliarityPrior(**cfg.options)
    if cfg.kind == "itemknn>familiarity":  # kNN proposes the pool, the LLM's familiarity scores it
        opts = dict(cfg.options)
        knn = {k: opts.pop(k) for k in ("neighbors", "shrinkage") if k in opts}
        n = int(opts.pop("n", 100))
        return TwoStagePrior(ItemKNNPrior(**knn), FamiliarityPrior(**opts), n=n)
    if cfg.kind.startswith("ranker:"):
        from llmrank.registry import rankers

        return RankerPrior(rankers.create(cfg.kind.split(":", 1)[1], **cfg.options))
    raise ConfigError(f"unknown prior kind {cfg.kind!r}; use itemknn, popularity, "
                      "familiarity, itemknn>familiarity or ranker:<name>")


def simulate(config: SimulateConfig, *, policies: Sequence[str] | None = None,
             steps: int | None = None, dataset: Any = None,
             progress: Callable[[int, int], None] | None = None) -> ReplayResult:
    """Load the data, run the replay for the chosen policies and return the raw result."""
    from llmrank.explore.replay import replay

    if dataset is None:
        from llmrank.data import load_dataset

        dataset = load_dataset(config.data)
    rcfg = config.replay_config()
    if steps is not None:
        rcfg.max_steps = steps
    return replay(dataset, config.select(policies), make_prior(config.prior), rcfg,
                  progress=progress)
