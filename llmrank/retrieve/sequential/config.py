"""Typed training/model configuration of the sequential retriever.

One dataclass holds everything that determines a trained model (architecture, optimisation,
seed), so a saved model folder can be rebuilt from its ``config.json`` and every run is
reproducible from its config alone."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from llmrank.config import check_device

Architecture = Literal["sasrec", "lru"]

# an ensemble member's settings over the main model's (SequentialConfig.ensemble entries):
# SASRec as the plain cross-entropy baseline, LRURec with its own defaults. Seeds are given
# by ``member_settings``: the k-th model of an architecture (the main model included) gets
# seed + k, so two members of one architecture are never the same model.
MEMBER_SETTINGS: dict[str, dict[str, Any]] = {
    "sasrec": {"model": "sasrec", "item_bias": False, "batch_size": 64},
    "lru": {"model": "lru", "item_bias": True, "batch_size": 16},
}
# the fused retriever's default models, the main one included: two seeds each of LRURec and
# SASRec, score average with equal weights (best on validation: 0.0958 NDCG@10 against 0.0912
# for LRURec + SASRec, eval/RESULTS.md section 4). A config that sets ``ensemble`` (even [])
# wins.
FUSED_DEFAULT_MODELS: tuple[str, ...] = ("lru", "lru", "sasrec", "sasrec")


def member_settings(names: Sequence[str], main_model: str, seed: int = 0) -> list[dict[str, Any]]:
    """Ensemble entries for member architectures ``names`` next to a ``main_model`` trained
    with ``seed``: a repeated architecture is a seed twin (seed + 1, + 2, ...). A member of
    the main model's architecture keeps the main model's settings (flags included); another
    architecture gets its MEMBER_SETTINGS."""
    count = Counter([main_model])
    out = []
    for name in names:
        base = {"model": name} if name == main_model else MEMBER_SETTINGS[name]
        out.append({**base, "seed": seed + count[name]})
        count[name] += 1
    return out


def default_fused_ensemble(main_model: str = "lru", seed: int = 0) -> list[dict[str, Any]]:
    """The members that complete FUSED_DEFAULT_MODELS around ``main_model``."""
    names = list(FUSED_DEFAULT_MODELS)
    if main_model in names:
        names.remove(main_model)
    return member_settings(names, main_model, seed)


@dataclass
class SequentialConfig:
    """Architecture and training settings.

    Defaults are the tuned LRURec-style settings for MovieLens-sized data (see
    eval/RESULTS.md section 4); ``model="sasrec"`` with ``item_bias=False`` is the plain
    cross-entropy SASRec baseline."""

    model: Architecture = "lru"
    hidden: int = 64
    layers: int = 2
    heads: int = 2  # sasrec only
    dropout: float = 0.2
    attn_dropout: float = 0.2  # attention (sasrec) or recurrent-output (lru) dropout
    max_len: int = 200
    item_bias: bool = True  # a learned per-item logit bias (folded into the FAISS vectors)
    # optimisation
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.01
    max_grad_norm: float = 5.0
    epochs: int = 200
    patience: int = 10  # epochs without a validation NDCG@10 gain before stopping
    min_epochs: int = 1
    eval_every: int = 1  # validate every n epochs
    window_step: int | None = None  # sliding-window step over long histories (None = max_len)
    # after early stopping, retrain from scratch on training + validation items for the best
    # epoch count (the validation item is visible when predicting the test item)
    refit: bool = False
    # extra member models (each a dict of field overrides over this config, e.g.
    # {"model": "sasrec", "item_bias": False, "batch_size": 64}) trained alongside this one;
    # retrieval then averages their scores in one inner product (EnsembleModel). Weights:
    # None = equal. Empty = a single model.
    ensemble: list[dict[str, Any]] = field(default_factory=list)
    ensemble_weights: list[float] | None = None
    # reproducibility and hardware
    seed: int = 0
    device: str = "auto"  # auto = cuda when available, else cpu
    # torch CPU threads. 1 by default: on the shared 2-core dev machine two threads ran a
    # training step 5x slower than one whenever other jobs were running (OpenMP spin-waits).
    threads: int | None = 1
    eval_batch_size: int = 256
    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes stored with the model

    def __post_init__(self) -> None:
        if self.model not in ("sasrec", "lru"):
            raise ValueError(f"model must be 'sasrec' or 'lru', got {self.model!r}")
        if self.hidden % max(1, self.heads):
            raise ValueError(f"hidden ({self.hidden}) must be divisible by heads ({self.heads})")
        if self.max_len < 2 or self.batch_size < 1 or self.epochs < 0:
            raise ValueError("max_len >= 2, batch_size >= 1 and epochs >= 0 are required")
        if self.eval_every < 1 or (self.window_step is not None and self.window_step < 1):
            raise ValueError("eval_every >= 1 and window_step >= 1 (or None) are required")
        # checked here: torch raised them as tracebacks once the data were loaded
        for name in ("dropout", "attn_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if not self.lr > 0 or self.weight_decay < 0 or not self.max_grad_norm > 0:
            raise ValueError("lr > 0, weight_decay >= 0 and max_grad_norm > 0 are required")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        check_device(self.device)  # torch's RuntimeError came after the data were loaded

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SequentialConfig:
        """Build from a dict, ignoring unknown keys (older/newer saved folders still load)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def sasrec_baseline(cls, **overrides: Any) -> SequentialConfig:
        """The reference SASRec: 2 blocks, hidden 64, full cross-entropy, no item bias."""
        base: dict[str, Any] = dict(model="sasrec", item_bias=False, max_len=200, dropout=0.2,
                                    attn_dropout=0.2, batch_size=64)
        base.update(overrides)
        return cls(**base)
