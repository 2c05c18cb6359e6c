"""Training batches made ahead of time by worker processes, so a step never waits for rendering.

A `WindowSampler` batch depends only on (seed, step, rank), never on what was drawn before, so any
process can make any step's batch and the result is the same as making it in the training loop:
workers take upcoming steps, the trainer collects them in step order. Synthetic scenes are
rendered on one core each; with N workers N batches are made at a time.
"""
from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

_SAMPLER: Any = None  # the sampler in each worker process


def _start_worker(sampler: Any) -> None:
    """One core per worker: rendering is NumPy/OpenCV work that would otherwise fight over threads."""
    global _SAMPLER
    import cv2
    import torch

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    _SAMPLER = sampler


def _make_batch(step: int, rank: int, batch_size: int) -> Any:
    return _SAMPLER.batch(step, rank, batch_size)


class PrefetchingSampler:
    """`batch(step, rank, batch_size)` as `sampler` gives it, made by `workers` processes up to
    `prefetch` steps ahead. Steps are expected in increasing order (a jump, e.g. on resume,
    just discards what was made ahead)."""

    def __init__(self, sampler: Any, workers: int, prefetch: int | None = None) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.sampler = sampler
        self.workers = workers
        self.prefetch = prefetch if prefetch is not None else 2 * workers
        if self.prefetch < 1:
            raise ValueError(f"prefetch must be >= 1, got {self.prefetch}")
        # spawn: a fresh interpreter per worker, no forked copy of the trainer's threads or CUDA state
        context = multiprocessing.get_context("spawn")
        self._pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker, initargs=(sampler,))
        self._pending: dict[tuple[int, int, int], Future] = {}

    def batch(self, step: int, rank: int = 0, batch_size: int = 1) -> Any:
        for ahead in range(self.prefetch + 1):
            key = (step + ahead, rank, batch_size)
            if key not in self._pending:
                self._pending[key] = self._pool.submit(_make_batch, *key)
        for stale in [key for key in self._pending if key[0] < step or key[1:] != (rank, batch_size)]:
            self._pending.pop(stale).cancel()
        return self._pending.pop((step, rank, batch_size)).result()

    def close(self) -> None:
        for future in self._pending.values():
            future.cancel()
        self._pending.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> "PrefetchingSampler":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def available_cores() -> int:
    """Cores this process may run on (the affinity mask, not the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
