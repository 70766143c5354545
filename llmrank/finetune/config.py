"""Typed recipe for `llmrank finetune`: one TOML file in ``finetune/`` describes a run (data,
prompt, examples, LoRA, training, validation, DPO); command-line flags override single fields.

Why dataclasses (validated by pydantic, unknown keys rejected): a typo in a recipe must fail
before an hour of CPU training, not silently fall back to a default, and the whole recipe is
written into the adapter's manifest so a result can be reproduced from it."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import ConfigDict, Field, ValidationError
from pydantic.dataclasses import dataclass

from llmrank.config_files import problems, read_config_file, with_overrides
from llmrank.errors import ConfigError

_STRICT = ConfigDict(extra="forbid", coerce_numbers_to_str=True)  # --set name=2024 is a name

DEFAULT_TARGETS: tuple[str, ...] = (
    "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
)


@dataclass(config=_STRICT)
class DataSpec:
    """Dataset and preprocessing; the same fields and order as the eval harness (min_rating,
    then k-core, then leave-one-out) so training and evaluation see the same split."""

    dataset: str = "ml-latest-small"
    data_dir: str | None = None
    kcore: int = 5
    min_rating: float | None = None


@dataclass(config=_STRICT)
class PromptSpec:
    """How rank prompts are rendered. The reranker must use the same values at inference:
    they are saved in the adapter manifest (``prompt``) for that reason.

    ``candidate_text`` 'title' ('Title (1995)') keeps 20 candidates near 250 tokens; 'full'
    is the reranker's richer default (genres, tags), about 1.6x longer prompts; 'genres'
    ('Title (1995). Genres: a, b') is used for the history too, so that a model without world
    knowledge of the titles can still match kinds of items."""

    template: str = "rank"
    max_history: int = Field(default=10, ge=0)
    candidate_text: Literal["title", "genres", "full"] = "title"
    max_prompt_tokens: int = Field(default=640, ge=1)


@dataclass(config=_STRICT)
class ExampleSpec:
    """Training examples from the training split only (never the valid/test targets).

    Each user contributes ``per_user`` examples: the last ``per_user`` positions of their
    training history are targets, each with the history before it. Candidates are the
    target plus ``n_candidates - 1`` negatives, ``hard_negatives`` of them drawn from the top
    ``hard_depth`` items a retriever proposes for that history prefix, the rest uniformly
    random; all are items the user never interacted with in training.

    ``candidates`` 'retrieved' (LlamaRec's training distribution) instead takes the
    retriever's top ``n_candidates`` for the prefix as the candidate list and keeps only the
    examples whose target is among them: the model then learns to reorder exactly what it
    will see at inference. With 'mixed' hard negatives, a target the retriever missed sits
    among retriever favourites, which teaches the model to push those favourites down."""

    candidates: Literal["mixed", "retrieved"] = "mixed"
    per_user: int = Field(default=2, ge=1)
    min_history: int = Field(default=3, ge=0)
    n_candidates: int = Field(default=20, ge=2)  # at most the builder's labels: checked when built
    hard_negatives: int = Field(default=0, ge=0)
    hard_depth: int = Field(default=50, ge=1)
    retriever: str = "none"  # 'none', or a `retrievers` registry name ('text', 'sequential', 'fused')
    retriever_options: dict[str, Any] = Field(default_factory=dict)  # llmrank Config dict
    retriever_path: str | None = None  # a saved index folder (llmrank.retrieve.store) to reuse
    max_users: int | None = Field(default=None, ge=1)  # first N users (smoke runs)


@dataclass(config=_STRICT)
class LoraSpec:
    """LoRA settings. ``top_layers`` > 0 puts adapters on the last N blocks only: backward
    then stops there, which makes a CPU step cheaper at some cost in capacity."""

    r: int = Field(default=16, ge=1)
    alpha: int = Field(default=32, ge=1)
    dropout: float = Field(default=0.05, ge=0, lt=1)
    target_modules: tuple[str, ...] = DEFAULT_TARGETS
    top_layers: int = Field(default=0, ge=0)


# transformers' schedulers that need no settings beyond warmup and steps (cosine_with_min_lr,
# warmup_stable_decay and reduce_lr_on_plateau need kwargs or an eval loop the recipe lacks):
# a typo fails at load, not in TrainingArguments after the data are built and the model loaded
Scheduler = Literal["linear", "cosine", "cosine_with_restarts", "polynomial", "constant",
                    "constant_with_warmup", "inverse_sqrt"]
SCHEDULERS: tuple[str, ...] = get_args(Scheduler)


@dataclass(config=_STRICT)
class TrainSpec:
    """Optimiser and loop. ``device`` 'auto' picks CUDA when present: bf16 and gradient
    checkpointing there, fp32 and ``use_cpu`` on CPU (bf16 matmuls are slow on CPU)."""

    max_steps: int = Field(default=600, ge=1)  # <= 0 would mean whole epochs to the trainer
    learning_rate: float = Field(default=3e-4, gt=0)
    batch_size: int = Field(default=1, ge=1)
    grad_accum: int = Field(default=4, ge=1)
    warmup_ratio: float = Field(default=0.05, ge=0, le=1)
    scheduler: Scheduler = "cosine"
    weight_decay: float = Field(default=0.0, ge=0)
    max_grad_norm: float = Field(default=1.0, ge=0)  # 0: no clipping
    logging_steps: int = Field(default=10, ge=1)
    save_steps: int = Field(default=50, ge=1)
    save_total_limit: int = 2
    threads: int = Field(default=1, ge=1)  # 2 threads ran 2-3x slower than 1 on the shared 2-core machine
    device: Literal["auto", "cpu", "cuda"] = "auto"
    gradient_checkpointing: Literal["auto", "on", "off"] = "auto"
    report_to: tuple[str, ...] = ("auto",)  # 'auto' = tensorboard, plus wandb when installed
    progress: bool = True


# what ``validation.per_user_metrics`` reports; a recipe naming anything else fails at load,
# not with a KeyError at the first validation step after the model has loaded
ValidationMetric = Literal["ndcg@1", "ndcg@5", "ndcg@10", "ndcg@20", "recall@1", "recall@5",
                           "recall@10", "recall@20", "mrr@20", "label_nll"]
VALIDATION_METRICS: tuple[str, ...] = get_args(ValidationMetric)
LOWER_IS_BETTER = frozenset({"label_nll"})  # losses: the best adapter has the lowest value


def is_better(metric: str, value: float, best: float) -> bool:
    """Whether ``value`` beats ``best`` by ``metric``: lower for losses, higher otherwise."""
    return value < best if metric in LOWER_IS_BETTER else value > best


@dataclass(config=_STRICT)
class ValidationSpec:
    """Validation by the reranker's own metric: label scoring of a fixed, seeded sample of
    validation users (their validation target + random negatives), every ``every`` steps.
    The adapter with the best ``metric`` is kept (the lowest for ``label_nll``, the highest
    for the ranking metrics). ``users`` 0 turns it off.

    ``protocol`` 'retrieved' validates on the retriever top-N protocol instead (the
    examples' retriever, users whose validation target it retrieved): the model is then
    chosen for the job it serves, reordering a retriever's candidates."""

    protocol: Literal["random", "retrieved"] = "random"
    users: int = Field(default=100, ge=0)
    every: int = Field(default=100, ge=0)  # 0: at the start and the end only
    n_negatives: int = Field(default=19, ge=1)
    metric: ValidationMetric = "ndcg@10"
    batch_size: int = Field(default=4, ge=1)


# TRL DPOTrainer's loss types (an unknown one failed at the first training step)
DPOLoss = Literal["sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair",
                  "sppo_hard", "aot", "aot_unpaired", "apo_zero", "apo_down", "discopop", "sft",
                  "sigmoid_norm"]


@dataclass(config=_STRICT)
class DPOSpec:
    """Preference tuning. ``source`` 'split': chosen = the true next item, rejected = a hard
    (or random) negative from the example builder; 'feedback': clicked vs shown-but-skipped
    pairs from a FeedbackStore (``feedback_db``)."""

    source: Literal["split", "feedback"] = "split"
    feedback_db: str | None = None
    negatives: Literal["shown", "above", "skipped"] = "shown"
    beta: float = Field(default=0.1, gt=0)
    pairs_per_example: int = Field(default=1, ge=1)
    loss_type: DPOLoss = "sigmoid"


@dataclass(config=_STRICT)
class Recipe:
    """One fine-tuning run. ``out`` holds checkpoints, logs and the final adapter; the
    adapter is also copied into the registry (``llmrank_home()/adapters/<adapter_name>``)
    when ``adapter_name`` is set."""

    name: str = "finetune"
    seed: int = Field(default=0, ge=0)  # numpy's generators refuse negative seeds
    base_model: str = "default"
    from_adapter: str | None = None  # start from this adapter (cross-domain, DPO after SFT)
    mode: Literal["sft", "dpo"] = "sft"
    out: str | None = None  # default eval/out/finetune/<name>
    adapter_name: str | None = None
    data: DataSpec = Field(default_factory=DataSpec)
    prompt: PromptSpec = Field(default_factory=PromptSpec)
    examples: ExampleSpec = Field(default_factory=ExampleSpec)
    lora: LoraSpec = Field(default_factory=LoraSpec)
    train: TrainSpec = Field(default_factory=TrainSpec)
    validation: ValidationSpec = Field(default_factory=ValidationSpec)
    dpo: DPOSpec = Field(default_factory=DPOSpec)

    def out_dir(self) -> Path:
        return Path(self.out or Path("eval") / "out" / "finetune" / self.name)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(json.dumps(dataclasses.asdict(self), default=list))
        return data


def recipe_from_dict(raw: dict[str, Any], overrides: dict[str, Any] | None = None) -> Recipe:
    """A validated Recipe from a dict; ``overrides`` are dotted keys (``train.max_steps``)
    as CLI flags give them, None values ignored."""
    data = with_overrides(raw, overrides)
    try:
        return Recipe(**data)
    except ValidationError as exc:
        raise ConfigError(f"invalid finetune recipe: {problems(exc.errors())}") from exc
    except TypeError as exc:  # unknown top-level key
        raise ConfigError(f"invalid finetune recipe: {exc}") from exc


DEFAULT_RECIPE = "sft_ml_small.toml"
_SOURCE_RECIPES = Path(__file__).resolve().parents[2] / "finetune"


def recipe_dirs() -> list[Path]:
    """Folders of the shipped recipes: the wheel's data package ``llmrank._recipes`` (mapped
    from the top-level ``finetune/`` folder, as prompts are), then the source tree's
    ``finetune/`` (editable installs, where that package does not exist)."""
    try:
        spec = importlib.util.find_spec("llmrank._recipes")
    except (ImportError, ValueError):
        spec = None
    dirs = [Path(p) for p in spec.submodule_search_locations] if spec and spec.submodule_search_locations else []
    return [d for d in [*dirs, _SOURCE_RECIPES] if d.is_dir()]


def shipped_recipe(name: str = DEFAULT_RECIPE) -> Path:
    """A recipe shipped with llmrank, wherever the command runs (the default recipe was read
    relative to the current directory and silently replaced by built-in defaults elsewhere)."""
    for folder in recipe_dirs():
        if (folder / name).is_file():
            return folder / name
    looked = ", ".join(str(d) for d in recipe_dirs()) or f"llmrank._recipes, {_SOURCE_RECIPES}"
    raise ConfigError(f"shipped finetune recipe {name!r} not found (looked in {looked}): "
                      "give --recipe PATH")


def resolve_recipe(path: Path | None) -> Path:
    """The recipe file a ``--recipe`` value names: none = the shipped default; a bare file
    name that is not in the current directory = the shipped recipe of that name; anything
    else the path itself (a missing one fails when read, naming it)."""
    if path is None:
        return shipped_recipe()
    if not path.exists() and path.parent == Path("."):
        return shipped_recipe(path.name)
    return path


def load_recipe(source: str | Path | dict[str, Any] | Recipe | None = None,
                overrides: dict[str, Any] | None = None) -> Recipe:
    """Read a recipe (TOML file, dict, Recipe or nothing = defaults) and apply overrides."""
    if isinstance(source, Recipe):
        raw = source.to_dict()
    elif source is None:
        raw = {}
    elif isinstance(source, dict):
        raw = source
    else:
        raw = read_config_file(Path(source), "finetune recipe")
    return recipe_from_dict(raw, overrides)
