"""FrameWindow: newest-wins, keyframes, stale cameras, bad stamps, bounded memory (no ROS)."""
from __future__ import annotations

import threading

import pytest

from moe3d_ros.intake.window import FrameWindow, StampedFrame

S = 1_000_000_000  # one second in ns


class FakeClock:
    """Receive times under the test's control (the window reads time only through `clock`)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def frame(camera: int, seconds: float, payload=None) -> StampedFrame:
    return StampedFrame(camera, int(seconds * S), payload if payload is not None else f"c{camera}@{seconds}")


def test_reference_camera_first_then_others_then_keyframes():
    clock = FakeClock()
    window = FrameWindow(num_cameras=2, window_size=4, keyframe_spacing=0.5, stale_after=10, reference=1, clock=clock)
    for t in (0.0, 0.6, 1.2):
        window.add(frame(0, t))
        window.add(frame(1, t + 0.01))
    snap = window.take(timeout=0)
    assert [f.payload for f in snap.frames] == ["c1@1.21", "c0@1.2", "c1@0.61", "c0@0.6"]
    assert [f.camera for f in snap.newest] == [1, 0]


def test_keyframe_spacing_and_superseded_drops():
    window = FrameWindow(num_cameras=1, window_size=3, keyframe_spacing=1.0, stale_after=10, clock=FakeClock())
    for t in (0.0, 0.3, 0.6, 1.1, 1.4):
        assert window.add(frame(0, t)) == "accepted"
    # 0.0 became a keyframe; 0.3 and 0.6 were too close to it and were replaced unused (superseded);
    # 1.1 is 1.1 s after the keyframe 0.0: kept. 1.4 is the newest.
    snap = window.take(timeout=0)
    assert [f.payload for f in snap.frames] == ["c0@1.4", "c0@1.1", "c0@0.0"]
    assert window.stats()[0].superseded == 2


def test_out_of_order_and_duplicate_stamps_are_dropped_and_counted():
    window = FrameWindow(num_cameras=1, window_size=1, keyframe_spacing=0, stale_after=10, clock=FakeClock())
    assert window.add(frame(0, 2.0)) == "accepted"
    assert window.add(frame(0, 1.0)) == "out_of_order"
    assert window.add(frame(0, 2.0, payload="again")) == "duplicate"
    counters = window.stats()[0]
    assert (counters.received, counters.out_of_order, counters.duplicate) == (3, 1, 1)
    assert window.take(timeout=0).frames[0].payload == "c0@2.0"


def test_silent_camera_is_left_out_and_the_others_served():
    clock = FakeClock()
    window = FrameWindow(num_cameras=2, window_size=2, keyframe_spacing=0, stale_after=1.0, clock=clock)
    window.add(frame(0, 0.0))
    window.add(frame(1, 0.0))
    clock.now = 5.0
    window.add(frame(0, 5.0))
    snap = window.take(timeout=0)
    assert [f.payload for f in snap.frames] == ["c0@5.0", "c0@0.0"] and snap.stale_cameras == [1]
    assert window.stats()[1].stale_windows == 1
    # The reference camera going silent hands the reference role to the next live camera.
    clock.now = 9.0
    window.add(frame(1, 9.0))
    snap = window.take(timeout=0)
    assert {f.camera for f in snap.frames} == {1} and snap.stale_cameras == [0]


def test_take_waits_for_new_frames_and_close_wakes_it():
    window = FrameWindow(num_cameras=1, window_size=1, keyframe_spacing=0, stale_after=10)
    assert window.take(timeout=0.01) is None
    window.add(frame(0, 1.0))
    assert window.take(timeout=0.01) is not None
    assert window.take(timeout=0.01) is None  # nothing new since
    results = []
    waiter = threading.Thread(target=lambda: results.append(window.take(timeout=5)))
    waiter.start()
    window.close()
    waiter.join(timeout=2)
    assert not waiter.is_alive() and results == [None]


def test_memory_stays_bounded_under_overload():
    """4 cameras at 60 Hz for a simulated minute, nobody taking windows: the window holds at most
    one newest frame plus window_size - 1 keyframes per camera."""
    clock = FakeClock()
    window = FrameWindow(num_cameras=4, window_size=6, keyframe_spacing=0.25, stale_after=1.0, clock=clock)
    for tick in range(60 * 60):
        clock.now = tick / 60
        for camera in range(4):
            window.add(frame(camera, tick / 60, payload=bytearray(8)))
    held = sum(len(q) for q in window._keyframes) + sum(f is not None for f in window._newest)
    assert held <= 4 * 6
    counters = window.stats()
    assert all(c.received == 3600 for c in counters)
    assert all(c.superseded > 3000 for c in counters)  # newest-wins drops are counted


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(num_cameras=0, window_size=1), "at least one camera"),
        (dict(num_cameras=3, window_size=2), "at least the number of cameras"),
        (dict(num_cameras=1, window_size=1, reference=1), "out of range"),
    ],
)
def test_bad_configuration_is_a_clear_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FrameWindow(keyframe_spacing=0.1, stale_after=1.0, **kwargs)
