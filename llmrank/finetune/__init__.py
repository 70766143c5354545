"""`llmrank finetune`: LoRA instruction tuning of the LLM reranker on interaction histories
(TRL SFT), preference tuning from feedback (DPO), adapters as artifacts with a manifest, and
cross-domain starts from an existing adapter.

Training prompts are rendered by the reranker's own prompt builder, so an adapter sees at
inference exactly the prompts it was trained on. Importing this package is light: torch,
transformers, trl, peft and datasets load inside the functions that train.

    from llmrank.finetune import load_recipe, finetune
    report = finetune(load_recipe("finetune/sft_ml_small.toml", {"train.max_steps": 50}))
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmrank.finetune.config import Recipe, load_recipe

if TYPE_CHECKING:
    from llmrank.finetune.api import FinetuneReport

__all__ = ["Recipe", "finetune", "load_recipe"]


def finetune(recipe: Recipe, **kwargs: Any) -> FinetuneReport:
    """Run a recipe (SFT or DPO; with a cross-domain comparison when asked); see api.py."""
    from llmrank.finetune.api import finetune as run

    return run(recipe, **kwargs)
