"""Training loop: full cross-entropy, AdamW, early stopping on validation NDCG@10.

Deterministic under ``config.seed`` on a given device (seeded torch, a numpy generator for
the batch order). The best epoch's weights are kept in memory and restored at the end, so
the returned model is the early-stopped one, not the last."""

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


def train_sequential(
    split: LeaveOneOut,
    config: SequentialConfig,
    *,
    on_epoch: Callable[[EpochReport], None] | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> TrainResult:
    """Train on the split's training histories and early-stop on its validation targets.

    ``on_step(step, steps_per_epoch)`` and ``on_epoch(report)`` let a CLI draw progress."""
    t0 = time.perf_counter()
    device = resolve_device(config.device)
    if device.type == "cpu" and config.threads:
        torch.set_num_threads(config.threads)
    seed_everything(config.seed)
    rng = np.random.default_rng(config.seed)
    dataset = split.dataset
    net = SequentialNet(dataset.n_items, config).to(device)
    model = SequentialModel(net, config, dataset.item_ids, meta={"dataset": dataset.name})
    windows = training_windows(split.train, config.max_len, config.window_step)
    if not windows:
        raise ValueError("no training history has two or more items")
    opt = torch.optim.AdamW(_param_groups(net, config.weight_decay), lr=config.lr)
    n_batches = (len(windows) + config.batch_size - 1) // config.batch_size
    lengths = np.array([len(w) for w in windows])
    log.info("training %s on %d windows, %d items, %d batches/epoch, device %s",
             config.model, len(windows), dataset.n_items, n_batches, device)

    history: list[EpochReport] = []
    best_metric, best_epoch, best_state = -1.0, 0, copy.deepcopy(net.state_dict())
    since_best, stopped_early = 0, False
    for epoch in range(1, config.epochs + 1):
        e0 = time.perf_counter()
        net.train()
        total = 0.0
        for step, batch_idx in enumerate(_length_batches(lengths, config.batch_size, rng)):
            batch = [windows[i] for i in batch_idx]
            length = max(len(w) for w in batch) - 1
            inputs, labels = train_batch(batch, length)
            loss = net.loss(torch.from_numpy(inputs).to(device), torch.from_numpy(labels).to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), config.max_grad_norm)
            opt.step()
            total += loss.item()
            if on_step:
                on_step(step + 1, n_batches)
        report = EpochReport(epoch, total / n_batches, 0.0)
        if epoch % config.eval_every == 0 or epoch == config.epochs:
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
    net.load_state_dict(best_state)
    net.eval()
    seconds = time.perf_counter() - t0
    model.meta.update(best_epoch=best_epoch, best_valid_ndcg10=best_metric,
                      epochs_run=len(history), train_seconds=round(seconds, 1))
    return TrainResult(model, history, best_epoch, best_metric, seconds, stopped_early)
