"""The public entry point that `llmrank finetune` maps to: run a recipe as SFT or DPO, or as
a cross-domain comparison (from an adapter vs from scratch), and optionally merge the
resulting adapter into its base model."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmrank.errors import ConfigError
from llmrank.finetune.config import Recipe

log = logging.getLogger(__name__)


@dataclass
class FinetuneReport:
    recipe: Recipe
    result: Any  # TrainResult of the run (the transferred run in a comparison)
    transfer: Any = None  # TransferResult when a cross-domain comparison ran
    merged: Path | None = None

    def summary(self) -> dict[str, Any]:
        # "name" is the result's registry name (None when unpublished); "recipe" names the run
        out: dict[str, Any] = {"recipe": self.recipe.name, "mode": self.recipe.mode,
                               "dataset": self.recipe.data.dataset, **self.result.summary()}
        if self.transfer is not None:
            out["transfer"] = self.transfer.summary()
        if self.merged is not None:
            out["merged"] = str(self.merged)
        return out


def finetune(recipe: Recipe, *, resume: bool = False, compare_scratch: bool = False,
             merge: bool = False, progress: bool | None = None,
             on_prepare: Callable[[str, int, int], None] | None = None) -> FinetuneReport:
    """Train per ``recipe.mode``. ``compare_scratch`` (needs ``recipe.from_adapter``) also
    trains from scratch with the same budget and reports the gain of the adapter start.
    ``on_prepare(stage, done, total)`` reports data preparation (retriever, prompts)."""
    transfer = None
    if compare_scratch:
        if not recipe.from_adapter or recipe.mode != "sft":
            raise ConfigError("a cross-domain comparison needs an SFT recipe with from_adapter")
        from llmrank.finetune.crossdomain import run_transfer

        transfer = run_transfer(recipe, recipe.from_adapter, resume=resume, progress=progress,
                                on_prepare=on_prepare)
        result = transfer.transferred
    elif recipe.mode == "dpo":
        from llmrank.finetune.dpo import train_dpo

        result = train_dpo(recipe, resume=resume, progress=progress, on_prepare=on_prepare)
    else:
        from llmrank.finetune.sft import train_sft

        result = train_sft(recipe, resume=resume, progress=progress, on_prepare=on_prepare)
    merged = None
    if merge:
        from llmrank.finetune.artifacts import merge_adapter

        merged = merge_adapter(result.adapter_dir, result.out_dir / "merged")
        log.info("merged model written to %s", merged)
    return FinetuneReport(recipe, result, transfer, merged)
