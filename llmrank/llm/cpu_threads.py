"""CPU threading for torch backends on small, often shared machines.

Why this module exists: with the default OpenMP wait policy, torch's worker threads spin
between parallel regions. When another process holds one of the cores (a training job, a
second engineer's benchmark), two spinning threads on two cores measured 3-6x SLOWER than
one thread here (SmolLM2-135M, 400-token prefill: 10.9 s vs 2.8 s; decode 750 vs 155 ms per
token); with the passive policy two threads were as fast as one under load and use both
cores when idle. The policy is read once, when libgomp loads with torch, so it must be in
the environment before the first ``import torch``: importing the ``llmrank.llm`` package
(which every LLM backend module does first) calls :func:`prefer_passive_openmp`, and so does
the ``llmrank`` CLI entry point before any command runs. A Python caller whose first torch
user is not an LLM backend (a sequential retriever, sentence-transformers embeddings) keeps
OpenMP's default policy unless OMP_WAIT_POLICY is set in its environment. An explicit setting
in the environment always wins."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)

WAIT_POLICY_ENV = "OMP_WAIT_POLICY"


def prefer_passive_openmp() -> bool:
    """Set OMP_WAIT_POLICY=PASSIVE unless the user set it or torch is already loaded (then it
    is too late to matter). Returns True when the setting was applied."""
    if WAIT_POLICY_ENV in os.environ or "torch" in sys.modules:
        return False
    os.environ[WAIT_POLICY_ENV] = "PASSIVE"
    return True


def set_torch_threads(threads: int | None) -> int:
    """Apply a thread count to torch (process-wide) when one is given; return the count in
    use. ``None`` or 0 keeps torch's default (the number of physical cores)."""
    import torch

    if threads:
        torch.set_num_threads(max(1, int(threads)))
    n = int(torch.get_num_threads())
    if os.environ.get(WAIT_POLICY_ENV, "").upper() != "PASSIVE" and n > 1:
        log.debug("torch uses %d threads with OpenMP wait policy %r: on a shared machine set "
                  "OMP_WAIT_POLICY=PASSIVE before torch loads", n, os.environ.get(WAIT_POLICY_ENV))
    return n


@contextmanager
def decode_threads(device_type: str, threads: int = 1) -> Iterator[None]:
    """Run the body with ``threads`` torch threads on a CPU, then restore the count.

    Why: a decode step multiplies one token per row by each weight matrix, work too small
    to split across cores; with two threads each of the ~200 small matmuls of a step waits
    for both threads to be scheduled, which on a loaded machine measured 6.7x slower than one
    thread (SmolLM2-135M, 5 explanations of 48 tokens: 666 s vs 99 s at load average 8).
    Prefill stays multi-threaded: its large matmuls do gain from both cores."""
    if device_type != "cpu":
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, min(threads, before)))
    try:
        yield
    finally:
        torch.set_num_threads(before)
