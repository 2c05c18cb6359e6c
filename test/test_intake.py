"""Input checks (moe3d_ros.intake.checks, .stamps, .health): no ROS, constructed cases."""
from __future__ import annotations

import struct
import threading
import time
import zlib

import cv2
import numpy as np
import pytest

from corrupt_images import png_with_broken_deflate
from moe3d_ros.intake.health import ERROR, OK, WARN, CameraHealth
from moe3d_ros.intake.checks import ImageLimits, Rejected, check_frame_id, check_intrinsics, check_raw_image, compressed_size, shorten
from moe3d_ros.intake.stamps import NS, StampedHistory, StampGuard, stamp_to_ns

LIMITS = ImageLimits()
RGB = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)


def _png(rgb: np.ndarray = RGB) -> bytes:
    return cv2.imencode(".png", rgb)[1].tobytes()


def _jpeg(rgb: np.ndarray = RGB) -> bytes:
    return cv2.imencode(".jpg", rgb)[1].tobytes()


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def test_shorten_bounds_hostile_strings():
    assert shorten("rgb8") == "rgb8"
    long = shorten("x" * 100_000)
    assert len(long) < 100 and "100000 chars" in long
    assert shorten("a\x00\u2603") == "a\\x00\\u2603"


@pytest.mark.parametrize("width, height", [(1, 20000), (20000, 1), (1, 8000), (12000, 12000), (0, 10), (20000, 16)])
def test_images_beyond_limits_are_rejected_by_size(width, height):
    with pytest.raises(Rejected) as info:
        LIMITS.check(width, height)
    assert info.value.reason == "size"


@pytest.mark.parametrize("width, height", [(640, 480), (3840, 2160), (7680, 4320), (3840, 1080), (160, 120)])
def test_ordinary_camera_sizes_pass(width, height):
    LIMITS.check(width, height)


def test_raw_image_step_and_length_must_agree():
    check_raw_image("rgb8", 64, 48, 192, 192 * 48, 3, 1, LIMITS)
    check_raw_image("rgb8", 64, 48, 256, 256 * 48, 3, 1, LIMITS)  # padded rows
    for step, length in [(100, 100 * 48), (192, 10), (192, 192 * 48 + 1), (10**9, 10**9 * 48)]:
        with pytest.raises(Rejected) as info:
            check_raw_image("rgb8", 64, 48, step, length, 3, 1, LIMITS)
        assert info.value.reason == "data_length"


@pytest.mark.parametrize("frame_id", ["", "x" * 10_000, "cam frame", "cam\x00", "kamera_\u00f6"])
def test_bad_frame_ids_are_rejected(frame_id):
    with pytest.raises(Rejected) as info:
        check_frame_id(frame_id)
    assert info.value.reason == "frame_id"


def test_good_frame_ids_pass():
    for frame_id in ("camera_color_optical_frame", "/front/optical", "cam-1.left"):
        check_frame_id(frame_id)


def test_compressed_sizes_come_from_headers():
    assert compressed_size(_png()) == (64, 48)
    assert compressed_size(_jpeg()) == (64, 48)


def test_a_huge_png_is_caught_from_its_header_before_decoding():
    """12000 x 12000 of zeros compresses to ~160 KB: the size is known from IHDR alone."""
    ihdr = struct.pack(">IIBBBBB", 12000, 12000, 8, 2, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(bytes(1000))) + _chunk(b"IEND", b"")
    width, height = compressed_size(png)
    with pytest.raises(Rejected, match="exceeds the limits"):
        LIMITS.check(width, height)


@pytest.mark.parametrize("corrupt, message", [
    (lambda png: png[: len(png) // 2], "truncated"),
    (lambda png: png[:60] + bytes([png[60] ^ 0xFF]) + png[61:], "CRC"),
    (lambda png: b"", "no data"),
    (lambda png: b"GIF89a" + png[6:], "neither PNG nor JPEG"),
])
def test_corrupt_png_is_rejected_before_decoding(corrupt, message):
    with pytest.raises(Rejected, match=message):
        compressed_size(corrupt(_png()))


def test_corrupt_jpeg_is_rejected_before_decoding():
    jpeg = _jpeg()
    with pytest.raises(Rejected, match="truncated"):
        compressed_size(jpeg[: len(jpeg) // 2])
    with pytest.raises(Rejected, match="frame header"):
        compressed_size(b"\xff\xd8\xff\xda\x00\x02" + bytes(50) + b"\xff\xd9")


def test_intrinsics_must_unproject_to_finite_points():
    good = np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]])
    check_intrinsics(good, 640, 480)
    for fx, fy, cx, cy in [(np.nan, 500, 320, 240), (np.inf, 500, 320, 240), (1e-300, 500, 320, 240), (500, 0, 320, 240),
                           (-500, 500, 320, 240), (500, 500, np.nan, 240), (500, 500, 320, 1e12)]:
        k = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]])
        with pytest.raises(Rejected) as info:
            check_intrinsics(k, 640, 480)
        assert info.value.reason == "camera_info"


def test_stamps_that_no_clock_produces_are_rejected():
    assert stamp_to_ns(12, 5) == 12 * NS + 5
    for sec, nanosec in [(12, NS), (12, 4_000_000_000), (0, 0), (-5, 0)]:
        with pytest.raises(Rejected) as info:
            stamp_to_ns(sec, nanosec)
        assert info.value.reason == "stamp"


def _camera(guard: StampGuard, start_s: float, frames: int, rate: float, offset_s: float = 0.0, t0: float = 1000.0):
    """Feed `frames` frames at `rate` Hz, receive times from t0 + start_s, stamps shifted by offset_s."""
    verdicts = []
    for i in range(frames):
        receive = t0 + start_s + i / rate
        try:
            verdicts.append(guard.check(int((receive + offset_s) * NS), int(receive * NS)))
        except Rejected as exc:
            verdicts.append(exc.reason)
    return verdicts


def test_one_frame_from_2038_is_rejected_and_the_camera_keeps_running():
    guard = StampGuard(max_jump_s=1.0)
    assert _camera(guard, 0, 10, 10) == ["ok"] * 10
    with pytest.raises(Rejected) as info:
        guard.check(2145916800 * NS, int(1001.0 * NS))
    assert info.value.reason == "stamp_jump"
    assert _camera(guard, 1.1, 10, 10) == ["ok"] * 10


def test_a_clock_reset_is_adopted_within_a_second():
    guard = StampGuard(max_jump_s=1.0, resync_after_s=0.5)
    _camera(guard, 0, 10, 10)
    verdicts = _camera(guard, 1.0, 20, 10, offset_s=-3600)  # the camera's clock jumped back one hour
    first_ok = verdicts.index("resync")
    assert set(verdicts[:first_ok]) == {"stamp_jump"} and first_ok / 10 <= 1.0
    assert verdicts[first_ok + 1:] == ["ok"] * (len(verdicts) - first_ok - 1)
    assert guard.resyncs == 1


def test_scattered_bad_stamps_never_resynchronise():
    guard = StampGuard(max_jump_s=1.0, resync_after_s=0.5)
    _camera(guard, 0, 5, 10)
    rng = np.random.default_rng(3)
    for i in range(20):  # each bad stamp lands somewhere else: no new clock to adopt
        receive = 1000.5 + i * 0.1
        with pytest.raises(Rejected):
            guard.check(int((receive + rng.uniform(50, 1e6)) * NS), int(receive * NS))
    assert guard.resyncs == 0


def test_a_slow_drift_is_followed_and_repeats_pass_to_the_window():
    guard = StampGuard(max_jump_s=1.0)
    receive, stamp = 1000.0, 5.0
    for _ in range(50):  # a bag replayed at 2x at 2 Hz: the offset grows 0.25 s a frame
        assert guard.check(int(stamp * NS), int(receive * NS)) == "ok"
        receive += 0.5
        stamp += 1.0
    assert guard.check(int((stamp - 1.0) * NS), int((receive + 30) * NS)) == "ok"  # the newest again, 30 s later


def test_a_receive_clock_that_jumps_back_with_the_stamps_resynchronises():
    guard = StampGuard(max_jump_s=1.0)
    _camera(guard, 0, 10, 10, t0=5000.0)
    assert guard.check(int(100.0 * NS), int(100.0 * NS)) == "resync"  # simulator reset: both clocks back


def test_history_gives_the_value_of_a_stamp_or_the_newest_older_within_tolerance():
    history = StampedHistory(maxlen=4, tolerance_ns=NS)
    for stamp, value in [(10, "a"), (12, "b"), (11, "c")]:
        history.add(stamp * NS, value)
    assert history.at(10 * NS) == "a" and history.at(11 * NS) == "c" and history.at(12 * NS) == "b"
    assert history.at(int(12.5 * NS)) == "b" and history.at(14 * NS) is None and history.at(9 * NS) is None
    for stamp in range(13, 17):
        history.add(stamp * NS, str(stamp))
    assert len(history) == 4 and history.at(10 * NS) is None


def test_history_waits_for_a_value_on_its_way_and_not_for_one_that_cannot_come():
    """An image's callback may run before its depth's: the worker waits, briefly, for the depth."""
    history = StampedHistory(maxlen=4, tolerance_ns=NS // 20)
    threading.Timer(0.05, history.add, (10 * NS, "depth")).start()
    start = time.monotonic()
    assert history.wait_nearest(10 * NS, timeout_s=5.0) == "depth" and time.monotonic() - start < 4.0
    assert history.wait_nearest(20 * NS, timeout_s=0.05) is None  # nothing arrives: the timeout bounds the wait
    history.add(31 * NS, "later")
    start = time.monotonic()
    assert history.wait_nearest(30 * NS, timeout_s=5.0) is None and time.monotonic() - start < 1.0  # newer data came: none will


def test_health_warns_for_a_while_after_a_bad_message_then_clears():
    health = CameraHealth(stale_after=2.0, warn_hold=10.0, no_output_error=5.0)
    for t in np.arange(0, 3, 0.1):
        health.accept(t)
        health.served()
    health.reject("encoding", "unsupported encoding 'yuv422'", 3.0)
    assert health.report(3.5).level == WARN and "yuv422" in health.report(3.5).message
    for t in np.arange(3.1, 14, 0.1):
        health.accept(t)
        health.served()
    report = health.report(14.0)
    assert report.level == OK and report.values["rejected_encoding"] == "1" and report.values["accepted"] == str(30 + 109)


def test_health_is_error_when_frames_arrive_but_none_reaches_an_output():
    health = CameraHealth(stale_after=2.0, no_output_error=5.0)
    health.accept(0.0)
    health.served()
    for t in np.arange(0.1, 7, 0.1):
        health.reject("stamp_jump", "stamp 2145916800.000 s jumps", t)
    report = health.report(7.0)
    assert report.level == ERROR and "no output" in report.message and "stamp_jump" in report.message
    assert float(report.values["input_rate_hz"]) == 0.0  # rejected frames are not input
    assert health.report(7.0, window_period=3.0).level == WARN  # a model this slow gets 9 s before ERROR


def test_health_of_a_silent_camera_is_warn():
    health = CameraHealth(stale_after=2.0)
    assert health.report(0.0).level == WARN
    health.accept(1.0)
    health.served()
    assert health.report(1.5).level == OK
    assert health.report(5.0).message.startswith("silent")


def test_decoder_messages_on_stderr_are_caught():
    """libpng prints to file descriptor 2 from C; the node counts and rate-limits such lines. The
    input is what reaches the decoder in the node: whole, CRC-correct chunks around a broken zlib
    stream (truncated or CRC-damaged PNGs are rejected before decoding)."""
    from moe3d_ros.intake.stderr_capture import capture_stderr

    png = png_with_broken_deflate(RGB)
    assert compressed_size(png) == (RGB.shape[1], RGB.shape[0])  # passes every check before decoding
    with capture_stderr() as lines:
        decoded = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert decoded is None
    assert any("libpng" in line and "IDAT" in line for line in lines), (cv2.__version__, lines)


def test_repeated_old_stamps_do_not_walk_the_reference_away():
    """A driver re-sending an old frame for seconds: each repeat is within the tolerance of the
    last, but only newer frames may move the reference, so fresh frames still pass."""
    guard = StampGuard(max_jump_s=1.0)
    _camera(guard, 0, 5, 10)
    old = int(1000.2 * NS)
    for i in range(40):  # 4 s of repeats of a stamp 0.2 s old: passed on to the window, later rejected as stale
        try:
            guard.check(old, int((1000.5 + 0.1 * i) * NS))
        except Rejected:
            pass
    assert guard.check(int(1004.6 * NS), int(1004.6 * NS)) == "ok"


def test_a_stale_first_frame_does_not_block_the_fresh_ones_that_follow():
    """The first frame to arrive was a repeat sent 5 s late; fresh frames, even sparse and mixed
    with more repeats, re-synchronise the camera."""
    guard = StampGuard(max_jump_s=1.0)
    stale = int(995.0 * NS)
    assert guard.check(stale, int(1000.0 * NS)) == "ok"
    verdicts = []
    for i, receive in enumerate([1001.0, 1001.5, 1003.0, 1003.2]):
        for stamp in (int(receive * NS), stale):  # a fresh frame, then the stale one again
            try:
                verdicts.append(guard.check(stamp, int(receive * NS)))
            except Rejected as exc:
                verdicts.append(exc.reason)
    assert verdicts[0::2] == ["ok"] * 4 and set(verdicts[1::2]) == {"stamp_jump"}  # fresh frames pass at once


def test_a_first_frame_from_2038_does_not_block_a_synchronised_camera():
    guard = StampGuard(max_jump_s=1.0)
    assert guard.check(2145916800 * NS, int(1000.0 * NS)) == "ok"  # nothing to compare the first frame with
    assert guard.check(int(1000.1 * NS), int(1000.1 * NS)) == "resync"  # agrees with the receive clock
    assert _camera(guard, 0.2, 5, 10) == ["ok"] * 5
