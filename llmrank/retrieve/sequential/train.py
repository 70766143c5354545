"""Training loop: full cross-entropy, AdamW, early stopping on validation NDCG@10.

Deterministic under ``config.seed`` on a given device (seeded torch, a numpy generator for
the batch order). The best epoch's weights are kept in memory and restored at the end, so
the returned model is the early-stopped one, not the last. Without validation users (every
history shorter than 3) there is nothing to stop on: every epoch runs and the last is kept,
with a warning. A non-finite training loss (diverged) stops training at the best epoch so far,
with a warning; so does a run in which no epoch beat the untrained weights."""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from llmrank.data.dataset import Dataset
from llmrank.data.splits import LeaveOneOut
from llmrank.retrieve.sequential.config import SequentialConfig
from llmrank.retrieve.sequential.evaluate import split_ranks, summarize
from llmrank.retrieve.sequential.model import SequentialModel, resolve_device
from llmrank.retrieve.sequential.net import SequentialNet
from llmrank.retrieve.sequential.windows import train_batch, training_windows

log = logging.getLogger(__name__)

SELECT_METRIC = "ndcg@10"


@dataclass
class EpochReport:
    """One epoch's mean training loss and validation metrics (empty when not validated)."""

    epoch: int
    loss: float
    seconds: float
    metrics: dict[str, float] = field(default_factory=dict)
    best: bool = False
    member: str = ""  # in an ensemble, which model ('2/4 lru seed 1'); '' for a single model


@dataclass
class TrainResult:
    model: SequentialModel
    history: list[EpochReport]
    best_epoch: int
    best_metric: float
    seconds: float
    stopped_early: bool


def _param_groups(net: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on matrices only: biases, LayerNorms and the LRU's log-parametrised
    eigenvalues are not shrunk (decaying them changes the recurrence, not the capacity)."""
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, p in net.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "params_log" in name else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def _length_batches(lengths: np.ndarray, batch_size: int,
                    rng: np.random.Generator) -> list[np.ndarray]:
    """Batches of windows of similar length (less padding: most histories are much shorter
    than max_len), in random order. Ties in length are broken at random each epoch."""
    order = np.lexsort((rng.random(len(lengths)), lengths))
    batches = [order[i: i + batch_size] for i in range(0, len(order), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def holdout_split(dataset: Dataset) -> LeaveOneOut:
    """Early-stopping split for a model that will serve ``dataset``: every user's last item
    is the validation target, everything before it is training data. Built on the visible
    part of a leave-one-out split (targets removed) this is exactly the LlamaRec setup:
    train on h[:-2], early-stop on h[-2], answer h[-1] from the full history."""
    hists = dataset.histories()
    n = dataset.n_users
    valid = np.full(n, -1, np.int64)
    train: list[np.ndarray] = []
    for u, h in enumerate(hists):
        if len(h) >= 3:
            train.append(h[:-1])
            valid[u] = h[-1]
        else:
            train.append(h)
    return LeaveOneOut(dataset, train, valid, valid.copy())


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


class _Run:
    """One model being trained on a fixed set of histories (net, optimiser, windows, rng)."""

    def __init__(self, config: SequentialConfig, n_items: int, histories: list[np.ndarray]) -> None:
        self.config = config
        self.device = resolve_device(config.device)
        if self.device.type == "cpu" and config.threads:
            torch.set_num_threads(config.threads)
        seed_everything(config.seed)
        self.rng = np.random.default_rng(config.seed)
        self.net = SequentialNet(n_items, config).to(self.device)
        self.windows = training_windows(histories, config.max_len, config.window_step)
        if not self.windows:
            raise ValueError("no training history has two or more items")
        self.lengths = np.array([len(w) for w in self.windows])
        self.opt = torch.optim.AdamW(_param_groups(self.net, config.weight_decay), lr=config.lr)
        self.n_batches = (len(self.windows) + config.batch_size - 1) // config.batch_size

    def epoch(self, on_step: Callable[[int, int], None] | None = None) -> float:
        """One pass over the windows; returns the mean training loss."""
        cfg, net = self.config, self.net
        net.train()
        total = 0.0
        for step, batch_idx in enumerate(_length_batches(self.lengths, cfg.batch_size, self.rng)):
            batch = [self.windows[i] for i in batch_idx]
            inputs, labels = train_batch(batch, max(len(w) for w in batch) - 1)
            loss = net.loss(torch.from_numpy(inputs).to(self.device),
                            torch.from_numpy(labels).to(self.device))
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.max_grad_norm)
            self.opt.step()
            total += loss.item()
            if on_step:
                on_step(step + 1, self.n_batches)
        return total / self.n_batches


def train_sequential(
    split: LeaveOneOut,
    config: SequentialConfig,
    *,
    on_epoch: Callable[[EpochReport], None] | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> TrainResult:
    """Train on the split's training histories and early-stop on its validation targets.
    With ``config.refit`` a fresh model is then trained on training + validation items for
    the early-stopped number of epochs, and that model is returned.

    ``on_step(step, steps_per_epoch)`` and ``on_epoch(report)`` let a CLI draw progress."""
    t0 = time.perf_counter()
    dataset = split.dataset
    run = _Run(config, dataset.n_items, split.train)
    net = run.net
    model = SequentialModel(net, config, dataset.item_ids, meta={"dataset": dataset.name})
    log.info("training %s on %d windows, %d items, %d batches/epoch, device %s",
             config.model, len(run.windows), dataset.n_items, run.n_batches, run.device)

    history: list[EpochReport] = []
    best_metric, best_epoch, best_state = -1.0, 0, copy.deepcopy(net.state_dict())
    since_best, stopped_early = 0, False
    validates = bool((np.asarray(split.valid_target) >= 0).any())
    if not validates:
        log.warning("no validation user (every history is shorter than 3 items): no early "
                    "stopping, all %d epochs run and the last is kept", config.epochs)
    for epoch in range(1, config.epochs + 1):
        e0 = time.perf_counter()
        report = EpochReport(epoch, run.epoch(on_step), 0.0)
        if not np.isfinite(report.loss):
            log.warning("training diverged at epoch %d (loss %s): stopping with epoch %d's "
                        "weights (try a lower lr)", epoch, report.loss, best_epoch)
            history.append(report)
            stopped_early = True
            break
        if not validates:
            best_epoch, best_state = epoch, copy.deepcopy(net.state_dict())
        elif epoch % config.eval_every == 0 or epoch == config.epochs:
            report.metrics = summarize(split_ranks(model.scores, split, "valid",
                                                   batch_size=config.eval_batch_size))
            value = report.metrics[SELECT_METRIC]
            if value > best_metric:
                best_metric, best_epoch, since_best = value, epoch, 0
                best_state = copy.deepcopy(net.state_dict())
                report.best = True
            else:
                since_best += config.eval_every
        report.seconds = time.perf_counter() - e0
        history.append(report)
        log.info("epoch %d loss %.4f valid %s", epoch, report.loss,
                 {k: round(v, 4) for k, v in report.metrics.items() if k.endswith("@10")})
        if on_epoch:
            on_epoch(report)
        if since_best >= config.patience and epoch >= config.min_epochs:
            stopped_early = True
            break
    if best_epoch == 0 and validates:
        log.warning("no epoch beat the untrained weights on validation %s (%s): the model "
                    "returned is untrained", SELECT_METRIC, best_metric)
    net.load_state_dict(best_state)
    if config.refit and best_epoch > 0:
        model = refit_sequential(split, config, best_epoch, on_step)
    model.net.eval()
    seconds = time.perf_counter() - t0
    if not any(h.metrics for h in history):  # no epoch validated (0 epochs, no validation users)
        best_metric = float("nan")  # not the -1.0 start value, which read as a measured NDCG
    model.meta.update(best_epoch=best_epoch,
                      best_valid_ndcg10=None if np.isnan(best_metric) else best_metric,
                      epochs_run=len(history), train_seconds=round(seconds, 1),
                      refit=bool(config.refit and best_epoch > 0))
    return TrainResult(model, history, best_epoch, best_metric, seconds, stopped_early)


def refit_sequential(split: LeaveOneOut, config: SequentialConfig, epochs: int,
                     on_step: Callable[[int, int], None] | None = None) -> SequentialModel:
    """A fresh model trained on every user's history including the validation item (what
    is visible when predicting the test item) for a fixed number of epochs."""
    histories = [split.history(u, "test") for u in range(split.dataset.n_users)]
    run = _Run(config, split.dataset.n_items, histories)
    log.info("refitting on training + validation items for %d epochs", epochs)
    for epoch in range(1, epochs + 1):
        loss = run.epoch(on_step)
        log.info("refit epoch %d loss %.4f", epoch, loss)
    run.net.eval()
    return SequentialModel(run.net, config, split.dataset.item_ids,
                           meta={"dataset": split.dataset.name, "refit_epochs": epochs})
