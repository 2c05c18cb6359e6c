"""Per-stage wall-clock timing that is honest on GPUs (synchronises before reading the clock), and
per-key rate limits for log lines."""
from __future__ import annotations

import threading
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


class RateLimiter:
    """At most one event per `period` seconds per key (rclpy throttles log lines per call site,
    which would hide a second kind of fault behind the first); counts what it held back."""

    def __init__(self, period: float) -> None:
        self.period = period
        self.last: dict[str, float] = {}
        self.suppressed: dict[str, int] = {}
        self.lock = threading.Lock()

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        with self.lock:
            if key in self.last and now - self.last[key] < self.period:
                self.suppressed[key] = self.suppressed.get(key, 0) + 1
                return False
            self.last[key] = now
            return True

    def take_suppressed(self, key: str) -> int:
        with self.lock:
            return self.suppressed.pop(key, 0)
