"""A weighted score average of several trained sequential models (e.g. LRURec + SASRec)
that is still ONE inner-product search.

    score(u, i) = sum_k w_k (<s_ku, e_ki> + b_ki)
                = <[w_1 s_1u, ..., w_K s_Ku, 1], [e_1i, ..., e_Ki, sum_k w_k b_ki]>

so user vectors concatenate the weighted member states and item vectors concatenate the
member item embeddings: retrieval, exclusions, filters and fusion with text work unchanged
(the fused retriever treats the concatenation as one behavioural space of width sum(hidden)).
Members differ in their errors, so the average ranks better than either member (section 4
of eval/RESULTS.md: the weight is chosen on validation)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from llmrank.data.splits import LeaveOneOut
from llmrank.errors import ModelError
from llmrank.retrieve.sequential.config import SequentialConfig
from llmrank.retrieve.sequential.model import SequentialModel

log = logging.getLogger(__name__)

ENSEMBLE = "ensemble.json"


class EnsembleModel(SequentialModel):
    """Same interface as ``SequentialModel`` (vectors, codes, save/load); no network of its
    own. ``config.hidden`` is the summed member width; ``config.extra`` lists the members."""

    def __init__(self, members: Sequence[SequentialModel], weights: Sequence[float] | None = None,
                 meta: dict[str, Any] | None = None) -> None:
        if not members:
            raise ModelError("an ensemble needs at least one member model")
        ids = members[0].item_ids
        if any(m.item_ids != ids for m in members[1:]):
            raise ModelError("ensemble members must share the same item vocabulary")
        w = [1.0 / len(members)] * len(members) if weights is None else [float(x) for x in weights]
        if len(w) != len(members):
            raise ModelError(f"{len(members)} members but {len(w)} weights")
        self.members = list(members)
        self.weights = w
        self.widths = [m.config.hidden for m in members]
        self.config = replace(members[0].config, hidden=sum(self.widths), heads=1,
                              max_len=max(m.config.max_len for m in members),
                              extra={"ensemble": [m.config.to_dict() for m in members],
                                     "weights": w})
        self.item_ids = list(ids)
        self.meta = dict(meta or {})
        self.meta.setdefault("ensemble", {"weights": w,
                                          "members": [dict(m.meta) for m in members]})
        self._index = {iid: c for c, iid in enumerate(self.item_ids)}

    @property
    def device(self) -> torch.device:
        return self.members[0].device

    # ---- vectors -----------------------------------------------------------------------
    def _combine(self, parts: list[np.ndarray]) -> np.ndarray:
        """[w_1 s_1, ..., w_K s_K, 1] from member user vectors [s_k, 1]."""
        out = np.hstack([w * p[:, :-1] for w, p in zip(self.weights, parts, strict=True)])
        return np.hstack([out, np.ones((len(out), 1), np.float32)]).astype(np.float32)

    def user_vectors(self, histories: Sequence[np.ndarray], batch_size: int | None = None
                     ) -> np.ndarray:
        return self._combine([m.user_vectors(histories, batch_size) for m in self.members])

    def user_vectors_from_embeddings(self, sequences: Sequence[np.ndarray],
                                     batch_size: int | None = None) -> np.ndarray:
        """Each sequence is (len, sum(hidden)): member k reads its own column block."""
        parts = []
        start = 0
        for m, width in zip(self.members, self.widths, strict=True):
            block = [np.asarray(s, np.float32)[:, start: start + width] if len(s)
                     else np.zeros((0, width), np.float32) for s in sequences]
            parts.append(m.user_vectors_from_embeddings(block, batch_size))
            start += width
        return self._combine(parts)

    def input_embeddings(self, codes: np.ndarray) -> np.ndarray:
        return np.hstack([m.input_embeddings(codes) for m in self.members])

    def item_vectors(self) -> np.ndarray:
        vecs = [m.item_vectors() for m in self.members]
        bias = sum(w * v[:, -1:] for w, v in zip(self.weights, vecs, strict=True))
        return np.hstack([v[:, :-1] for v in vecs] + [bias]).astype(np.float32)

    # ---- persistence -------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        names = [f"member_{k}" for k in range(len(self.members))]
        for name, m in zip(names, self.members, strict=True):
            m.save(folder / name)
        (folder / ENSEMBLE).write_text(json.dumps(
            {"members": names, "weights": self.weights, "meta": self.meta}, indent=2,
            default=str))
        log.info("saved ensemble of %d sequential models to %s", len(names), folder)
        return folder

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> EnsembleModel:
        folder = Path(path)
        if not (folder / ENSEMBLE).is_file():
            raise ModelError(f"{folder} is not an ensemble folder (no {ENSEMBLE})")
        spec = json.loads((folder / ENSEMBLE).read_text())
        members = [SequentialModel.load(folder / name, device) for name in spec["members"]]
        return cls(members, spec["weights"], spec.get("meta"))


def member_configs(config: SequentialConfig) -> list[SequentialConfig]:
    """The configs of every member: ``config`` itself, then each ``config.ensemble`` entry
    applied over it (members never nest)."""
    base = replace(config, ensemble=[], ensemble_weights=None)
    out = [base]
    for overrides in config.ensemble:
        data = base.to_dict()
        data.update(overrides)
        out.append(SequentialConfig.from_dict(data))
    return out


def train_model(split: LeaveOneOut, config: SequentialConfig, *,
                on_epoch: Callable[[Any], None] | None = None,
                on_step: Callable[[int, int], None] | None = None) -> SequentialModel:
    """``train_sequential`` for a single config; with ``config.ensemble`` every member is
    trained (each early-stopped on its own) and the returned model averages them."""
    from llmrank.retrieve.sequential.train import train_sequential

    configs = member_configs(config)
    if len(configs) == 1:
        return train_sequential(split, config, on_epoch=on_epoch, on_step=on_step).model
    members = []
    for k, cfg in enumerate(configs):
        label = f"{k + 1}/{len(configs)} {cfg.model} seed {cfg.seed}"
        log.info("training ensemble member %s", label)
        report = None if on_epoch is None else _labelled(on_epoch, label)
        members.append(train_sequential(split, cfg, on_epoch=report, on_step=on_step).model)
    meta = dict(members[0].meta)
    meta["train_seconds"] = round(sum(float(m.meta.get("train_seconds", 0)) for m in members), 1)
    return EnsembleModel(members, config.ensemble_weights, meta)


def _labelled(on_epoch: Callable[[Any], None], label: str) -> Callable[[Any], None]:
    """``on_epoch`` receiving each report marked with its ensemble member."""
    return lambda report: on_epoch(replace(report, member=label))


def without_refit(config: SequentialConfig) -> SequentialConfig:
    """``config`` with refitting off for the main model and every ensemble member."""
    return replace(config, refit=False,
                   ensemble=[{**member, "refit": False} for member in config.ensemble])


def wants_refit(config: SequentialConfig) -> bool:
    return any(c.refit for c in member_configs(config))


def refit_model(split: LeaveOneOut, config: SequentialConfig, trained: SequentialModel,
                on_step: Callable[[int, int], None] | None = None) -> SequentialModel:
    """``trained`` (from ``train_model`` with refitting off) refitted as ``config`` asks: each
    member whose config has ``refit`` is retrained from scratch on training + validation
    items for its early-stopped number of epochs; the others are kept. Done after anything
    that is tuned on the validation items (fusion), which the refitted model has seen."""
    from llmrank.retrieve.sequential.train import refit_sequential

    configs = member_configs(config)
    members = trained.members if isinstance(trained, EnsembleModel) else [trained]
    if len(members) != len(configs):
        raise ModelError(f"{len(members)} trained models for {len(configs)} member configs")
    out = []
    for cfg, member in zip(configs, members, strict=True):
        epochs = int(member.meta.get("best_epoch") or 0)
        if not cfg.refit or epochs < 1:
            out.append(member)
            continue
        new = refit_sequential(split, cfg, epochs, on_step)
        new.meta = {**member.meta, "refit": True, "refit_epochs": epochs}
        out.append(new)
    if not isinstance(trained, EnsembleModel):
        return out[0]
    meta = {k: v for k, v in trained.meta.items() if k != "ensemble"}
    meta["refit"] = any(m.meta.get("refit") for m in out)
    return EnsembleModel(out, trained.weights, meta)
