"""Per-stage wall-clock timing that is honest on GPUs (synchronises before reading the clock)."""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator

import torch


class StageTimer:
    """Accumulates seconds per named stage; `device` decides whether CUDA must be synchronised.

    `enabled=False` records nothing and never synchronises: a forward captured in a CUDA graph
    must not touch the host.
    """

    def __init__(self, device: torch.device | str = "cpu", enabled: bool = True) -> None:
        self.enabled = enabled
        self.sync = enabled and torch.device(device).type == "cuda"
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        if not self.enabled:
            yield
            return
        if self.sync:
            torch.cuda.synchronize()
        start = time.perf_counter()
        try:
            yield
        finally:
            if self.sync:
                torch.cuda.synchronize()
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    def total(self) -> float:
        return sum(self.seconds.values())

    def report(self) -> str:
        return ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in self.seconds.items())
