"""A progress line for long loops (training steps, evaluation scenes)."""
from __future__ import annotations

import logging
import sys
import time

LOG = logging.getLogger("moe3d")


class Progress:
    """A one-line progress bar on a terminal; a log line every `log_every` steps otherwise."""

    def __init__(self, total: int, start: int, log_every: int) -> None:
        self.total, self.start, self.log_every = total, start, log_every
        self.began = time.perf_counter()
        self.tty = sys.stderr.isatty()

    def update(self, step: int, values: dict[str, float]) -> None:
        done = step + 1 - self.start
        rate = (time.perf_counter() - self.began) / max(done, 1)
        eta = rate * (self.total - step - 1)
        text = " ".join(f"{k} {v:.4g}" for k, v in values.items())
        if self.tty:
            filled = int(30 * (step + 1) / self.total)
            bar = "#" * filled + "." * (30 - filled)
            sys.stderr.write(f"\r[{bar}] {step + 1}/{self.total} {text} {rate:.2f} s/it ETA {eta / 60:.1f} min ")
            sys.stderr.flush()
            if step + 1 == self.total:
                sys.stderr.write("\n")
        elif (step + 1) % self.log_every == 0 or step + 1 == self.total:
            LOG.info("%d/%d %s (%.2f s each, ETA %.1f min)", step + 1, self.total, text, rate, eta / 60)
