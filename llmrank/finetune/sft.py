"""Supervised fine-tuning of the reranker with LoRA (TRL SFTTrainer + peft).

The loss is on the answer only: each example is the prompt tokens plus ONE label token and
a completion mask, so TRL sets the prompt's labels to -100 (``completion_only_loss``). TRL's
fused LM head then projects only that position through the vocabulary, so a step costs the
backbone's forward and backward and nothing more.

CPU (the default here): fp32, ``use_cpu``, no gradient checkpointing (it trades compute for
memory, and CPU memory is not the constraint). GPU: bf16 and gradient checkpointing.
Checkpoints every ``save_steps`` make a run resumable; validation by ranking keeps the best
adapter (see validation.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from llmrank.finetune.config import Recipe
from llmrank.finetune.prepare import PreparedRun, prepare_run, tokenize_sft
from llmrank.finetune.trainer import TrainResult, fit, pick_device, torch_threads


def train_sft(recipe: Recipe, *, resume: bool = False, run: PreparedRun | None = None,
              progress: bool | None = None, callbacks: Sequence[Any] = (),
              on_prepare: Callable[[str, int, int], None] | None = None) -> TrainResult:
    """Build data, train a LoRA adapter with SFT, keep the best by validation NDCG@10, save
    it with its manifest (and publish it under ``recipe.adapter_name``)."""
    from trl import SFTConfig, SFTTrainer

    device = pick_device(recipe.train)  # a GPU asked for where there is none: before any work
    out = recipe.out_dir()
    out.mkdir(parents=True, exist_ok=True)
    show = recipe.train.progress if progress is None else progress
    with torch_threads(recipe.train.threads):
        run = run or prepare_run(recipe, progress=on_prepare)
        train_ds = tokenize_sft(run.examples, run.prompt_model)
        tokenizer = run.prompt_model.tokenizer

        def make_trainer(model: Any, peft_cfg: Any, common: dict[str, Any], cbs: list[Any]) -> Any:
            args = SFTConfig(**common, completion_only_loss=True, packing=False, max_length=None,
                             dataset_num_proc=None, shuffle_dataset=True)
            return SFTTrainer(model=model, args=args, train_dataset=train_ds,
                              processing_class=tokenizer, peft_config=peft_cfg, callbacks=cbs)

        return fit(recipe, run, make_trainer, device=device, show=show, resume=resume,
                   callbacks=callbacks)
