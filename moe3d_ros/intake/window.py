"""FrameWindow: the bounded set of frames the next model call sees. No ROS here.

Per camera it keeps the newest frame plus a few earlier keyframes (at least `keyframe_spacing`
seconds apart by stamp). A new frame replaces the newest one; the replaced frame becomes a
keyframe if it is far enough from the previous keyframe, otherwise it is dropped ("superseded",
newest wins). Frames whose stamp is not newer than the camera's newest are dropped as
"out_of_order" or "duplicate". A camera whose newest frame arrived more than `stale_after`
seconds ago (receive time) is left out of windows until it speaks again.

Callbacks only call `add` (a reference copy under a lock); the worker calls `take`.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(frozen=True)
class StampedFrame:
    camera: int
    stamp_ns: int
    payload: Any  # the undecoded message; decoding happens in the worker
    received: float = 0.0  # monotonic seconds, set by FrameWindow.add


@dataclass
class CameraCounters:
    received: int = 0
    out_of_order: int = 0
    duplicate: int = 0
    superseded: int = 0  # replaced before any window used it and not kept as a keyframe
    stale_windows: int = 0  # windows that left this camera out because it was silent


@dataclass
class WindowSnapshot:
    frames: list[StampedFrame]  # frames[0] is the reference (world) frame
    stale_cameras: list[int] = field(default_factory=list)

    @property
    def newest(self) -> list[StampedFrame]:
        """The newest frame of every camera in the window (one per camera, reference first)."""
        seen: set[int] = set()
        out = []
        for frame in self.frames:
            if frame.camera not in seen:
                seen.add(frame.camera)
                out.append(frame)
        return out


class FrameWindow:
    def __init__(
        self,
        num_cameras: int,
        window_size: int,
        keyframe_spacing: float,
        stale_after: float,
        reference: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if num_cameras < 1:
            raise ValueError("at least one camera is needed")
        if window_size < num_cameras:
            raise ValueError(f"window_size ({window_size}) must be at least the number of cameras ({num_cameras})")
        if keyframe_spacing < 0 or stale_after <= 0:
            raise ValueError("keyframe_spacing must be >= 0 and stale_after > 0")
        if not 0 <= reference < num_cameras:
            raise ValueError(f"reference camera {reference} out of range 0..{num_cameras - 1}")
        self.window_size = window_size
        self.spacing_ns = int(keyframe_spacing * 1e9)
        self.stale_after = stale_after
        self.reference = reference
        self.clock = clock
        self._newest: list[StampedFrame | None] = [None] * num_cameras
        self._newest_used = [False] * num_cameras
        self._keyframes: list[deque[StampedFrame]] = [deque(maxlen=window_size - 1) for _ in range(num_cameras)]
        self.counters = [CameraCounters() for _ in range(num_cameras)]
        self._fresh = False
        self._closed = False
        self._cond = threading.Condition()

    @property
    def num_cameras(self) -> int:
        return len(self._newest)

    def add(self, frame: StampedFrame) -> str:
        """Offer a frame; returns "accepted", "out_of_order" or "duplicate"."""
        c = frame.camera
        with self._cond:
            counters = self.counters[c]
            counters.received += 1
            newest = self._newest[c]
            if newest is not None and frame.stamp_ns <= newest.stamp_ns:
                if frame.stamp_ns == newest.stamp_ns:
                    counters.duplicate += 1
                    return "duplicate"
                counters.out_of_order += 1
                return "out_of_order"
            if newest is not None:
                keyframes = self._keyframes[c]
                far_enough = not keyframes or newest.stamp_ns - keyframes[-1].stamp_ns >= self.spacing_ns
                if far_enough and keyframes.maxlen:
                    keyframes.append(newest)
                elif not self._newest_used[c]:
                    counters.superseded += 1
            self._newest[c] = StampedFrame(c, frame.stamp_ns, frame.payload, self.clock())
            self._newest_used[c] = False
            self._fresh = True
            self._cond.notify_all()
            return "accepted"

    def reset_camera(self, camera: int) -> None:
        """Forget a camera's frames (its clock was reset: old and new stamps do not compare)."""
        with self._cond:
            self._newest[camera] = None
            self._newest_used[camera] = False
            self._keyframes[camera].clear()

    def take(self, timeout: float | None = None) -> WindowSnapshot | None:
        """Wait for a frame not yet used by a window; None on timeout, close, or all cameras stale."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._fresh or self._closed, timeout):
                return None
            if self._closed:
                return None
            self._fresh = False
            now = self.clock()
            live = [c for c, f in enumerate(self._newest) if f is not None and now - f.received <= self.stale_after]
            stale = [c for c, f in enumerate(self._newest) if f is not None and c not in live]
            for c in stale:
                self.counters[c].stale_windows += 1
            if not live:
                return None
            order = sorted(live, key=lambda c: (c != self.reference, c))
            frames = [self._newest[c] for c in order]
            for c in order:
                self._newest_used[c] = True
            # Fill the remaining slots with keyframes, newest first, taking turns across cameras.
            queues = [list(reversed(self._keyframes[c])) for c in order]
            depth = 0
            while len(frames) < self.window_size and any(depth < len(q) for q in queues):
                for queue in queues:
                    if depth < len(queue) and len(frames) < self.window_size:
                        frames.append(queue[depth])
                depth += 1
            return WindowSnapshot(frames=frames, stale_cameras=stale)

    def close(self) -> None:
        """Wake a waiting `take` for shutdown."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def stats(self) -> list[CameraCounters]:
        with self._cond:
            return [CameraCounters(**vars(c)) for c in self.counters]
