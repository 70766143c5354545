"""Turning time-ordered histories (dataset item codes) into padded token windows.

Training uses sequence-to-sequence windows: a window of max_len + 1 tokens gives max_len
(input, next-item) pairs. Long histories are cut into windows from the most recent end with
a sliding step (LlamaRec/LRURec do the same), so every interaction is a training target."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PAD = 0


def training_windows(histories: Sequence[np.ndarray], max_len: int,
                     step: int | None = None) -> list[np.ndarray]:
    """Token windows (codes + 1) of length <= max_len + 1, newest first per user. Histories
    shorter than two items teach nothing and are skipped. ``step`` (None = ``max_len``) must
    be positive."""
    if step is not None and step < 1:
        raise ValueError(f"window step must be >= 1, got {step}")
    step = step or max_len
    out: list[np.ndarray] = []
    for hist in histories:
        tokens = np.asarray(hist, dtype=np.int64) + 1
        if len(tokens) < 2:
            continue
        end = len(tokens)
        while True:
            start = max(0, end - max_len - 1)
            out.append(tokens[start:end])
            if start == 0:
                break
            end -= step
            if end < 2:
                break
    return out


def pad_left(seqs: Sequence[np.ndarray], length: int) -> np.ndarray:
    """(len(seqs), length) int64 with each sequence's last ``length`` tokens right-aligned."""
    out = np.zeros((len(seqs), length), dtype=np.int64)
    for row, seq in enumerate(seqs):
        tail = seq[-length:]
        if len(tail):
            out[row, length - len(tail):] = tail
    return out


def train_batch(windows: Sequence[np.ndarray], max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs (all tokens but the last) and labels (all but the first), left-padded."""
    inputs = pad_left([w[:-1] for w in windows], max_len)
    labels = pad_left([w[1:] for w in windows], max_len)
    return inputs, labels


def query_tokens(histories: Sequence[np.ndarray], max_len: int) -> np.ndarray:
    """Left-padded tokens of the last ``max_len`` items of each history (codes + 1)."""
    return pad_left([np.asarray(h, dtype=np.int64) + 1 for h in histories], max_len)
