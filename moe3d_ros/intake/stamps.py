"""Camera stamps that can be trusted, and values looked up by stamp. No ROS here.

A camera's stamps run at a steady offset from the time its frames are received (its latency, or
its clock's offset when it is not synchronised with this host). `StampGuard` follows that offset
from frame to frame (a slow drift, such as a bag replayed faster than real time, is followed) and
rejects a frame whose offset jumps by more than `max_jump` from the last accepted one: a single
frame stamped in 2038 or in 1970 never becomes the camera's reference stamp. When the camera's
clock really was reset, its frames keep arriving at one new offset; after `resync_after` seconds
of that the guard adopts it and tells the caller to forget the camera's old frames. A stamp that
agrees with the receive clock itself (a synchronised camera) is always accepted, so a stale or
bogus first frame cannot block the fresh frames that follow.
"""
from __future__ import annotations

import bisect
import threading
import time
from dataclasses import dataclass
from typing import Generic, TypeVar

from .checks import Rejected

NS = 1_000_000_000
T = TypeVar("T")


def stamp_to_ns(sec: int, nanosec: int) -> int:
    """A message stamp in nanoseconds; rejects what no clock produces."""
    if not 0 <= nanosec < NS:
        raise Rejected("stamp", f"stamp nanosec {nanosec} is outside [0, 1e9)")
    if sec < 0 or (sec == 0 and nanosec == 0):
        raise Rejected("stamp", f"stamp {sec}.{nanosec:09d} is unset or negative")
    return sec * NS + nanosec


@dataclass
class _Candidate:
    offset_ns: int
    first_receive_ns: int
    last_stamp_ns: int
    frames: int = 1


class StampGuard:
    """Per camera: accepts stamps that keep the camera's offset to the receive clock.

    `check` returns "ok", or "resync" when the caller must drop the camera's earlier frames (its
    clock was reset: the new stamps are not comparable with the old ones); it raises Rejected
    for a stamp that jumps.
    """

    def __init__(self, max_jump_s: float, resync_after_s: float = 0.5) -> None:
        if max_jump_s <= 0 or resync_after_s < 0:
            raise ValueError("max_jump_s must be > 0 and resync_after_s >= 0")
        self.max_jump_ns = int(max_jump_s * NS)
        self.resync_after_ns = int(resync_after_s * NS)
        self._offset_ns: int | None = None  # of the last accepted frame
        self._last_stamp_ns = 0  # newest accepted stamp
        self._candidate: _Candidate | None = None
        self.resyncs = 0

    def check(self, stamp_ns: int, receive_ns: int) -> str:
        offset = stamp_ns - receive_ns
        if self._offset_ns is None:
            self._adopt(offset, stamp_ns)
            return "ok"
        if stamp_ns == self._last_stamp_ns:
            return "ok"  # a repeat of the newest frame: the window counts it as a duplicate
        jump = offset - self._offset_ns
        if abs(jump) <= self.max_jump_ns:
            # The receive clock moved back with the stamps (a replayed bag looping, a simulator
            # reset): the offset holds but the window would call every later frame out of order.
            went_back = stamp_ns < self._last_stamp_ns - self.max_jump_ns
            if went_back:
                self._adopt(offset, stamp_ns)
                self.resyncs += 1
                return "resync"
            if stamp_ns > self._last_stamp_ns:  # only newer frames move the reference: repeats of old
                self._adopt(offset, stamp_ns)    # stamps must not walk it away step by step
            return "ok"
        if abs(offset) <= self.max_jump_ns:
            # The stamp agrees with the receive clock (a synchronised camera): plausible whatever came
            # before, e.g. when the first frame to arrive was a stale one or stamped in the future.
            went_back = stamp_ns < self._last_stamp_ns
            self._adopt(offset, stamp_ns)
            if went_back:
                self.resyncs += 1
                return "resync"
            return "ok"
        candidate = self._candidate
        # A new clock runs: its frames keep one offset and advance. A stamp sent again and again
        # (its offset drifts) or scattered bad stamps never make one; a repeat leaves it as it is.
        if candidate is not None and stamp_ns <= candidate.last_stamp_ns:
            pass
        elif candidate is not None and abs(offset - candidate.offset_ns) <= self.max_jump_ns:
            candidate.frames += 1
            candidate.last_stamp_ns = stamp_ns
            if candidate.frames >= 2 and receive_ns - candidate.first_receive_ns >= self.resync_after_ns:
                self._adopt(offset, stamp_ns)
                self.resyncs += 1
                return "resync"
        else:
            self._candidate = _Candidate(offset, receive_ns, stamp_ns)
        raise Rejected("stamp_jump", f"stamp {stamp_ns / NS:.3f} s jumps {jump / NS:+.3f} s from the camera's "
                                     f"recent stamps relative to their receive time")

    def _adopt(self, offset: int, stamp_ns: int) -> None:
        self._offset_ns = offset
        self._last_stamp_ns = stamp_ns
        self._candidate = None


class StampedHistory(Generic[T]):
    """The last `maxlen` values by stamp; `at(stamp)` is the value of that stamp or the newest
    older one within `tolerance_ns` (CameraInfo for an image, a depth for a window frame)."""

    def __init__(self, maxlen: int, tolerance_ns: int) -> None:
        self.maxlen = maxlen
        self.tolerance_ns = tolerance_ns
        self._stamps: list[int] = []
        self._values: list[T] = []
        self._lock = threading.Condition()  # callbacks add, the worker looks up (and may wait for one)

    def add(self, stamp_ns: int, value: T) -> None:
        with self._lock:
            index = bisect.bisect_left(self._stamps, stamp_ns)
            if index < len(self._stamps) and self._stamps[index] == stamp_ns:
                self._values[index] = value
                return
            self._stamps.insert(index, stamp_ns)
            self._values.insert(index, value)
            if len(self._stamps) > self.maxlen:
                del self._stamps[0], self._values[0]
            self._lock.notify_all()

    def at(self, stamp_ns: int) -> T | None:
        with self._lock:
            index = bisect.bisect_right(self._stamps, stamp_ns) - 1
            if index < 0 or stamp_ns - self._stamps[index] > self.tolerance_ns:
                return None
            return self._values[index]

    def around(self, stamp_ns: int) -> tuple[tuple[int, T] | None, tuple[int, T] | None]:
        """The (stamp, value) at or before `stamp_ns` and the one after it, each None if absent."""
        with self._lock:
            index = bisect.bisect_right(self._stamps, stamp_ns)
            before = (self._stamps[index - 1], self._values[index - 1]) if index > 0 else None
            after = (self._stamps[index], self._values[index]) if index < len(self._stamps) else None
            return before, after

    def nearest(self, stamp_ns: int) -> T | None:
        """The value whose stamp is nearest to `stamp_ns`, before or after, within the tolerance."""
        near = [p for p in self.around(stamp_ns) if p is not None and abs(p[0] - stamp_ns) <= self.tolerance_ns]
        return min(near, key=lambda p: abs(p[0] - stamp_ns))[1] if near else None

    def wait_nearest(self, stamp_ns: int, timeout_s: float) -> T | None:
        """`nearest(stamp_ns)`, waiting up to `timeout_s` for a value to arrive when none is near
        yet: two topics of one sensor (an image and its depth) reach their callbacks in either order.
        Returns early once a value newer than the tolerance has come, since nothing nearer will."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while True:
                value = self.nearest(stamp_ns)
                if value is not None or (self._stamps and self._stamps[-1] - stamp_ns > self.tolerance_ns):
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._lock.wait(left)

    def clear(self) -> None:
        with self._lock:
            self._stamps.clear()
            self._values.clear()

    def __len__(self) -> int:
        return len(self._stamps)
