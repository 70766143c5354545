"""Cross-domain transfer: start a new domain from an existing adapter and measure what that
start is worth against training from scratch with the same budget (steps, data, seed,
validation users), by the reranker's validation metric and a paired test over the users.

Why both runs: a transferred adapter's score alone says nothing; the question a user has is
whether starting from it beats a fresh LoRA given the same compute."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from llmrank.errors import ConfigError, ModelError
from llmrank.finetune.config import LOWER_IS_BETTER, Recipe, recipe_from_dict

if TYPE_CHECKING:
    from llmrank.eval.stats import PairedResult
    from llmrank.finetune.artifacts import AdapterManifest
    from llmrank.finetune.trainer import TrainResult

log = logging.getLogger(__name__)


@dataclass
class TransferResult:
    transferred: TrainResult
    scratch: TrainResult
    metric: str
    paired: PairedResult | None

    @property
    def gain(self) -> float:
        """How much better the transferred run's best validation value is than the scratch
        run's: positive when the adapter start helped, also for a loss (lower is better)."""
        diff = _best(self.transferred) - _best(self.scratch)
        return -diff if self.metric in LOWER_IS_BETTER else diff

    def summary(self) -> dict[str, Any]:
        a, b = _best(self.transferred), _best(self.scratch)
        return {
            "metric": self.metric, "from_adapter": a, "from_scratch": b,
            "gain": self.gain, "relative_gain": self.gain / abs(b) if b else None,
            "paired": self.paired.to_dict() if self.paired else None,
            "from_adapter_run": self.transferred.summary(), "from_scratch_run": self.scratch.summary(),
        }


def _best(result: TrainResult) -> float:
    return float(result.best["value"]) if result.best else float("nan")


def check_base_adapter(recipe: Recipe, base_adapter: str) -> AdapterManifest:
    """The base adapter's manifest, once it is known to fit ``recipe``: same base model (its
    LoRA weights are deltas of that model), same prompt template, version and candidate text
    (the format it learned). Checked before any data preparation or training, so a wrong
    start fails in seconds. ModelError: missing adapter or other base model; ConfigError:
    other prompt format."""
    from llmrank.finetune.artifacts import read_manifest
    from llmrank.models.resolve import resolve_model
    from llmrank.prompts.store import load_template

    manifest = read_manifest(base_adapter)  # ModelError when absent or not saved by llmrank
    model_path = resolve_model(recipe.base_model)
    same_path = Path(manifest.base_model_path).resolve() == Path(model_path).resolve()
    if not (same_path or manifest.base_model == recipe.base_model):
        raise ModelError(f"adapter {base_adapter!r} was trained on {manifest.base_model_path!r}, "
                         f"the recipe trains {model_path!r}: a LoRA adapter only fits its base model")
    template = load_template(recipe.prompt.template)
    theirs = (manifest.template, manifest.template_version, manifest.prompt.get("candidate_text"))
    ours = (template.name, template.version, recipe.prompt.candidate_text)
    if theirs != ours:
        raise ConfigError(f"adapter {base_adapter!r} learned prompts (template, version, "
                          f"candidate_text) = {theirs}, the recipe renders {ours}")
    return manifest


def variants(recipe: Recipe, base_adapter: str,
             lora: dict[str, Any] | None = None) -> tuple[Recipe, Recipe]:
    """The two recipes: identical but for the starting adapter and the output folders.
    ``lora`` (the base adapter's LoRA settings) replaces the recipe's in both: the
    transferred run inherits the adapter's shape, so the scratch run must get it too."""
    raw = recipe.to_dict()
    if lora:
        if lora != raw["lora"]:
            log.info("cross-domain: both runs use the base adapter's LoRA settings %s", lora)
        raw["lora"] = lora
    out = recipe.out_dir()
    name = recipe.adapter_name  # publish both adapters only when the recipe publishes one

    def published(suffix: str) -> str | None:
        return f"{name}-{suffix}" if name else None

    transferred = recipe_from_dict({**raw, "from_adapter": base_adapter, "name": f"{recipe.name}-from-adapter",
                                    "out": str(out / "from-adapter"), "adapter_name": published("from-adapter")})
    scratch = recipe_from_dict({**raw, "from_adapter": None, "name": f"{recipe.name}-scratch",
                                "out": str(out / "scratch"), "adapter_name": published("scratch")})
    return transferred, scratch


def run_transfer(recipe: Recipe, base_adapter: str, *, resume: bool = False,
                 **train_kwargs: Any) -> TransferResult:
    """Train from ``base_adapter`` and from scratch on ``recipe``'s (new) dataset; compare."""
    from llmrank.eval.stats import paired_test
    from llmrank.finetune.sft import train_sft

    if recipe.validation.users <= 0:
        raise ConfigError("a transfer comparison needs validation users (validation.users > 0)")
    from llmrank.finetune.artifacts import adapter_lora

    check_base_adapter(recipe, base_adapter)
    transferred, scratch = variants(recipe, base_adapter, adapter_lora(base_adapter))
    log.info("cross-domain: training from adapter %s", base_adapter)
    a = train_sft(transferred, resume=resume, **train_kwargs)
    log.info("cross-domain: training from scratch with the same budget")
    b = train_sft(scratch, resume=resume, **train_kwargs)
    paired = None
    if a.best and b.best and a.best.get("users") == b.best.get("users"):
        paired = paired_test(np.asarray(a.best["per_user"]), np.asarray(b.best["per_user"]),
                             seed=recipe.seed)
    return TransferResult(a, b, recipe.validation.metric, paired)


__all__ = ["TransferResult", "check_base_adapter", "run_transfer", "variants"]
