"""What every LoRA training run (SFT, DPO) shares: device and precision settings, the LoRA
config, loading the model (fresh or from an adapter), thread and TensorBoard scopes, resuming,
validation by ranking, and writing the best adapter with its manifest. The trainers
themselves (sft.py, dpo.py) only build their data and TRL trainer."""

from __future__ import annotations

import json
import logging
import os
import resource
import shutil
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmrank.errors import ConfigError
from llmrank.finetune.artifacts import (
    AdapterManifest,
    copy_adapter,
    lora_fields,
    provenance,
    publish,
    save_adapter,
)
from llmrank.finetune.config import LoraSpec, Recipe, TrainSpec
from llmrank.finetune.prepare import PreparedRun
from llmrank.finetune.validation import RankingValidation, make_callback

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What a run produced: the adapter folder (best by validation when validation ran),
    its registry name, and the numbers worth reporting."""

    adapter_dir: Path
    adapter_name: str | None
    manifest: AdapterManifest
    steps: int
    seconds: float
    seconds_per_step: float
    peak_memory_mb: float
    device: str
    best: dict[str, Any] | None
    validation: list[dict[str, Any]] = field(default_factory=list)
    out_dir: Path = Path(".")

    def summary(self) -> dict[str, Any]:
        return {
            "adapter": str(self.adapter_dir), "name": self.adapter_name, "steps": self.steps,
            "seconds": round(self.seconds, 1), "seconds_per_step": round(self.seconds_per_step, 2),
            "peak_memory_mb": round(self.peak_memory_mb), "device": self.device,
            "best": _brief(self.best), "out": str(self.out_dir),
        }


def _brief(best: dict[str, Any] | None) -> dict[str, Any] | None:
    """The best-validation record without its per-user arrays (for tables and logs)."""
    if best is None:
        return None
    return {k: v for k, v in best.items() if k not in ("per_user", "users")}


# ---- settings ---------------------------------------------------------------------------
def pick_device(train: TrainSpec) -> str:
    from llmrank.devices import resolve_device

    return resolve_device(train.device)


def device_args(train: TrainSpec, device: str) -> dict[str, Any]:
    """Precision and memory settings by device (TRL defaults to bf16: wrong on CPU)."""
    gc = train.gradient_checkpointing == "on" or (
        train.gradient_checkpointing == "auto" and device == "cuda")
    if device == "cpu":
        return {"use_cpu": True, "bf16": False, "fp16": False, "gradient_checkpointing": gc}
    return {"use_cpu": False, "bf16": True, "fp16": False, "gradient_checkpointing": gc}


def report_targets(train: TrainSpec) -> list[str]:
    """'auto' = TensorBoard, plus W&B when the package is installed."""
    import importlib.util

    out: list[str] = []
    for name in train.report_to:
        if name == "auto":
            if importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX"):
                out.append("tensorboard")
            if importlib.util.find_spec("wandb"):
                out.append("wandb")
        elif name != "none":
            out.append(name)
    return list(dict.fromkeys(out))


def lora_config(spec: LoraSpec, n_layers: int) -> Any:
    from peft import LoraConfig

    layers = list(range(max(0, n_layers - spec.top_layers), n_layers)) if spec.top_layers else None
    return LoraConfig(r=spec.r, lora_alpha=spec.alpha, lora_dropout=spec.dropout,
                      target_modules=list(spec.target_modules), layers_to_transform=layers,
                      bias="none", task_type="CAUSAL_LM")


def load_model(run: PreparedRun, device: str, trainable_adapter: str | None) -> Any:
    """The base model (fp32 on CPU, bf16 on GPU), with ``trainable_adapter`` loaded for
    further training when given (cross-domain start, DPO after SFT)."""
    import torch
    from transformers import AutoModelForCausalLM

    dtype = torch.float32 if device == "cpu" else torch.bfloat16
    model: Any = AutoModelForCausalLM.from_pretrained(run.model_path, dtype=dtype)
    if trainable_adapter:
        from peft import PeftModel

        from llmrank.models.resolve import resolve_adapter

        path = resolve_adapter(trainable_adapter)
        model = PeftModel.from_pretrained(model, str(path), is_trainable=True)
        log.info("continuing from adapter %s", path)
    return model


@contextmanager
def torch_threads(n: int) -> Any:
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(max(1, n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


@contextmanager
def tensorboard_dir(path: Path) -> Any:
    """transformers reads the TensorBoard folder from the environment only, when the trainer
    (its TensorBoard callback) is built: build the trainer inside this scope."""
    old = os.environ.get("TENSORBOARD_LOGGING_DIR")
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(path)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TENSORBOARD_LOGGING_DIR", None)
        else:
            os.environ["TENSORBOARD_LOGGING_DIR"] = old


def peak_memory_mb(device: str) -> float:
    if device == "cuda":
        import torch

        return float(torch.cuda.max_memory_allocated()) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def attach(trainer: Any, callback: Any, show: bool) -> None:
    """Give the validation callback its trainer (to log through it) and, without progress
    output, drop the printer that writes every log dict to stdout (it would corrupt --json)."""
    from transformers.trainer_callback import PrinterCallback

    if callback is not None:
        callback.trainer = trainer
    if not show:
        trainer.remove_callback(PrinterCallback)


def last_checkpoint(folder: Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    if not folder.is_dir():
        return None
    found: str | None = get_last_checkpoint(str(folder))
    return found


def common_args(recipe: Recipe, device: str, run_dir: Path, progress: bool) -> dict[str, Any]:
    """TrainingArguments shared by SFT and DPO."""
    t = recipe.train
    return {
        "output_dir": str(run_dir / "checkpoints"), "max_steps": t.max_steps,
        "per_device_train_batch_size": t.batch_size, "gradient_accumulation_steps": t.grad_accum,
        "learning_rate": t.learning_rate, "lr_scheduler_type": t.scheduler,
        # transformers reads a float below 1 as a share of the steps, but 1.0 as one step
        "warmup_steps": t.warmup_ratio if t.warmup_ratio < 1 else t.max_steps,
        "weight_decay": t.weight_decay,
        "max_grad_norm": t.max_grad_norm, "logging_steps": t.logging_steps,
        "save_strategy": "steps", "save_steps": t.save_steps,
        "save_total_limit": t.save_total_limit, "eval_strategy": "no", "seed": recipe.seed,
        "data_seed": recipe.seed, "report_to": report_targets(t), "disable_tqdm": not progress,
        "dataloader_num_workers": 0, "remove_unused_columns": False,
        **device_args(t, device),
    }


RUN_FILE = "llmrank_run.json"  # in checkpoints/: the settings its checkpoints were trained with

# recipe fields a resumed run may change: they do not shape the weights trained so far
RESUMABLE = frozenset({
    "name", "out", "adapter_name", "train.max_steps", "train.save_steps",
    "train.save_total_limit", "train.logging_steps", "train.threads", "train.progress",
    "train.report_to", "train.device", "train.gradient_checkpointing", "validation.every",
    "validation.batch_size",
})


def run_settings(recipe: Recipe, run: PreparedRun) -> dict[str, Any]:
    """What checkpoints depend on: every recipe field but ``RESUMABLE`` (dotted keys), the
    training examples' fingerprint and the DPO pair count (a feedback file can grow)."""
    flat: dict[str, Any] = {}
    for key, value in recipe.to_dict().items():
        if isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    settings = {k: v for k, v in flat.items() if k not in RESUMABLE}
    settings["data.fingerprint"] = run.data_meta.get("fingerprint")
    settings["data.preference_pairs"] = run.data_meta.get("preference_pairs")
    out: dict[str, Any] = json.loads(json.dumps(settings, default=str))
    return out


def resume_point(out: Path, resume: bool, settings: dict[str, Any]) -> str | None:
    """The checkpoint to resume from, or None for a fresh run. A fresh run empties
    ``checkpoints/`` (else a later ``--resume`` would continue an older run's checkpoint) and
    records ``settings`` there; a resume whose settings differ raises ConfigError."""
    folder = out / "checkpoints"
    checkpoint = last_checkpoint(folder) if resume else None
    if checkpoint is not None:
        check_resume(folder, checkpoint, settings)
        return checkpoint
    if resume:
        log.info("no checkpoint in %s: starting from scratch", folder)
    elif last_checkpoint(folder):
        log.warning("fresh run: removing the old checkpoints in %s (--resume continues them)",
                    folder)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / RUN_FILE).write_text(json.dumps(settings, indent=2), encoding="utf-8")
    return None


def check_resume(folder: Path, checkpoint: str, settings: dict[str, Any]) -> None:
    """ConfigError when ``checkpoint`` was trained with other data or recipe settings: resuming
    it would mix two runs under one manifest. Checkpoints without a record (made before
    records were kept) resume with a warning."""
    path = folder / RUN_FILE
    if not path.is_file():
        log.warning("%s has no %s: cannot check that it was trained with this recipe", folder,
                    RUN_FILE)
        return
    stored = json.loads(path.read_text(encoding="utf-8"))
    changed = sorted(k for k in {*stored, *settings} if stored.get(k) != settings.get(k))
    if changed:
        diff = "; ".join(f"{k}: {stored.get(k)!r} -> {settings.get(k)!r}" for k in changed[:5])
        more = f" (and {len(changed) - 5} more)" if len(changed) > 5 else ""
        raise ConfigError(
            f"cannot resume from {checkpoint}: it was trained with other settings ({diff}{more}); "
            "restore them, or run without --resume to start over (this deletes the checkpoints)")


def ranking_validation(recipe: Recipe, run: PreparedRun, out: Path, *,
                       fresh: bool) -> tuple[RankingValidation | None, Any]:
    """The recipe's validation by ranking and its trainer callback (None, None when off)."""
    if run.validation is None or recipe.validation.users <= 0:
        return None, None
    from llmrank.finetune.prompting import make_builder

    validation = RankingValidation(
        run.validation, lambda llm: make_builder(llm, recipe.prompt), run.model_path,
        recipe.validation, out, seed=recipe.seed, fresh=fresh,
        max_prompt_tokens=recipe.prompt.max_prompt_tokens)
    return validation, make_callback(validation, recipe.validation.every)


MakeTrainer = Callable[[Any, Any, dict[str, Any], list[Any]], Any]


def fit(recipe: Recipe, run: PreparedRun, make_trainer: MakeTrainer, *, device: str, show: bool,
        resume: bool, callbacks: Sequence[Any] = ()) -> TrainResult:
    """The run every trainer shares: load the model (a new LoRA, or ``from_adapter``
    trainable), build the TRL trainer with ``make_trainer(model, peft_config, common_args,
    callbacks)``, validate by ranking, train (resuming when asked), write the best adapter."""
    out = recipe.out_dir()
    checkpoint = resume_point(out, resume, run_settings(recipe, run))  # before the model loads
    model = load_model(run, device, recipe.from_adapter)
    peft_cfg = None if recipe.from_adapter else lora_config(
        recipe.lora, int(model.config.num_hidden_layers))
    lora = trained_lora(recipe, model)
    validation, cb = ranking_validation(recipe, run, out, fresh=checkpoint is None)
    # the TensorBoard callback reads its folder when the trainer is built, not when it trains
    with tensorboard_dir(out / "tensorboard"):
        trainer = make_trainer(model, peft_cfg, common_args(recipe, device, out, show),
                               [*([cb] if cb else []), *callbacks])
        attach(trainer, cb, show)
        start = time.perf_counter()
        trainer.train(resume_from_checkpoint=checkpoint)
    return finish(recipe, run, trainer, validation, device, time.perf_counter() - start,
                  checkpoint, lora)


def trained_lora(recipe: Recipe, model: Any) -> dict[str, Any]:
    """The LoRA settings of the adapter this run trains. From ``from_adapter`` that is the
    loaded adapter's own shape, whatever the recipe says (the manifest must tell it: a
    cross-domain comparison gives it to the from-scratch run)."""
    if not recipe.from_adapter:
        return dict(recipe.to_dict()["lora"])
    lora = lora_fields(model.peft_config["default"].to_dict())
    if lora != recipe.to_dict()["lora"]:
        log.info("adapter %s keeps its own LoRA settings %s (the recipe's are unused)",
                 recipe.from_adapter, lora)
    return lora


def finish(recipe: Recipe, run: PreparedRun, trainer: Any, validation: RankingValidation | None,
           device: str, seconds: float, checkpoint: str | None,
           lora: dict[str, Any] | None = None) -> TrainResult:
    """Write the final adapter (the best by validation when there is one) and its manifest."""
    out = recipe.out_dir()
    state = trainer.state
    steps_done = int(state.global_step)
    first = int(checkpoint.rsplit("-", 1)[-1]) if checkpoint else 0
    per_step = seconds / max(1, steps_done - first)
    val_time = sum(r.get("seconds", 0.0) for r in (validation.history if validation else []))
    train_per_step = (seconds - val_time) / max(1, steps_done - first)
    best = validation.best if validation else None
    history = validation.full_history() if validation else []
    manifest = build_manifest(recipe, run, best, history, {
        "steps": steps_done, "resumed_from": checkpoint, "seconds": round(seconds, 1),
        "validation_seconds": round(val_time, 1),
        "seconds_per_step": round(train_per_step, 3),
        "seconds_per_step_with_validation": round(per_step, 3),
        "examples_per_step": recipe.train.batch_size * recipe.train.grad_accum,
        "peak_memory_mb": round(peak_memory_mb(device)), "device": device,
        "threads": recipe.train.threads, "log_history": state.log_history[-50:],
    }, lora)
    final = out / "adapter"
    if best is not None and (out / "best" / "adapter_config.json").is_file():
        copy_adapter(out / "best", final, manifest)
    else:
        save_adapter(trainer.model, final, manifest)
    name = None
    if recipe.adapter_name:
        publish(final, recipe.adapter_name)
        name = recipe.adapter_name
    return TrainResult(final, name, manifest, steps_done, seconds, train_per_step,
                       peak_memory_mb(device), device, best, history, out)


def build_manifest(recipe: Recipe, run: PreparedRun, best: dict[str, Any] | None,
                   history: list[dict[str, Any]], training: dict[str, Any],
                   lora: dict[str, Any] | None = None) -> AdapterManifest:
    """``history``: every validation of the run, resumed parts included; ``lora``: the
    trained adapter's settings (the recipe's when None)."""
    prov = provenance()
    return AdapterManifest(
        name=recipe.adapter_name or recipe.name, base_model=recipe.base_model,
        base_model_path=run.model_path, template=run.builder.template.name,
        template_version=run.builder.template.version, prompt=recipe.to_dict()["prompt"],
        mode=recipe.mode, seed=recipe.seed,
        dataset={k: run.data_meta.get(k) for k in
                 ("dataset", "preprocessing", "examples", "summary", "fingerprint", "examples_version",
                  "hard_source", "preference_pairs")},
        metrics={"best": best, "validation": history},
        training=training, lora=lora or recipe.to_dict()["lora"], recipe=recipe.to_dict(),
        from_adapter=recipe.from_adapter, versions=prov["versions"], git=prov["git"],
    )
