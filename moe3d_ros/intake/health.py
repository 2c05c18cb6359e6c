"""What a camera's diagnostics say, from what happened to its frames recently. No ROS here.

Levels follow diagnostic_msgs: OK, WARN, ERROR. A camera is
- ERROR when it keeps sending frames but none of them has reached an output for a while (every
  frame rejected, or its stamps out of order): the reason is the last rejection;
- WARN when it is silent, or when a message of it was rejected recently (the warning clears by
  itself `warn_hold` seconds after the last bad message);
- OK otherwise.
"""
from __future__ import annotations

import threading
from collections import Counter, deque
from dataclasses import dataclass

from .checks import shorten

OK, WARN, ERROR = 0, 1, 2
REJECTION_REASONS = ("encoding", "size", "data_length", "format", "corrupt", "frame_id", "stamp", "stamp_jump",
                     "out_of_order", "duplicate", "camera_info", "scale_input")


@dataclass
class HealthReport:
    level: int
    message: str
    values: dict[str, str]


class CameraHealth:
    """Counters and recent history of one camera's input; thread-safe (callbacks and the worker)."""

    def __init__(self, stale_after: float, warn_hold: float = 10.0, no_output_error: float = 5.0) -> None:
        self.stale_after = stale_after
        self.warn_hold = warn_hold
        self.no_output_error = no_output_error
        self.accepted = 0
        self.rejected: Counter[str] = Counter()
        self._accepted_times: deque[float] = deque(maxlen=200)
        self._last_received: float | None = None
        self._waiting_since: float | None = None  # first frame received after the last output
        self._last_rejection: tuple[float, str, str] | None = None
        self._lock = threading.Lock()

    def _received(self, now: float) -> None:
        if self._last_received is None or now - self._last_received > self.stale_after:
            self._waiting_since = now  # the camera (re)starts: its silence is not an output failure
        elif self._waiting_since is None:
            self._waiting_since = now
        self._last_received = now

    def accept(self, now: float) -> None:
        with self._lock:
            self._received(now)
            self.accepted += 1
            self._accepted_times.append(now)

    def reject(self, reason: str, message: str, now: float) -> None:
        with self._lock:
            self._received(now)
            self.rejected[reason] += 1
            self._last_rejection = (now, reason, shorten(message, 160))

    def served(self) -> None:
        """A window used this camera's newest frame (its outputs went out, or nobody listens)."""
        with self._lock:
            self._waiting_since = None

    def input_rate(self, now: float, span: float = 5.0) -> float:
        with self._lock:
            recent = [t for t in self._accepted_times if now - t <= span]
        return (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 1 and recent[-1] > recent[0] else 0.0

    def report(self, now: float, window_period: float = 0.0) -> HealthReport:
        """The camera's level and message; `window_period` (the model's recent time per window)
        stretches the no-output limit so a slow model is not called a dead camera."""
        rate = self.input_rate(now)
        with self._lock:
            values = {"accepted": str(self.accepted), "rejected": str(sum(self.rejected.values())),
                      "input_rate_hz": f"{rate:.2f}"}
            values.update({f"rejected_{reason}": str(self.rejected[reason]) for reason in REJECTION_REASONS})
            last = self._last_rejection
            values["last_rejection"] = f"{last[1]}: {last[2]}" if last else ""
            limit = max(self.no_output_error, 3.0 * window_period)
            if self._last_received is None:
                return HealthReport(WARN, "no frames received yet", values)
            silent_for = now - self._last_received
            if silent_for > self.stale_after:
                return HealthReport(WARN, f"silent for {silent_for:.1f} s", values)
            if self._waiting_since is not None and now - self._waiting_since > limit:
                cause = f"frames rejected ({last[1]}: {last[2]})" if last and last[0] >= self._waiting_since else "frames not processed"
                return HealthReport(ERROR, f"no output for {now - self._waiting_since:.1f} s while receiving: {cause}", values)
            if last is not None and now - last[0] <= self.warn_hold:
                return HealthReport(WARN, f"rejected {last[1]}: {last[2]}", values)
            return HealthReport(OK, "ok", values)
