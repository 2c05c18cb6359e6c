"""moe3d_node's intake as a robot integrator meets it, each case over real DDS between processes:
a camera driver in its own process with default QoS and default DDS settings, stamps from a clock
that jumps, CameraInfo that would unproject to infinity, a tiny image that would take gigabytes,
frame_ids no output should carry, a camera whose frames all fail, two cameras at different rates,
SIGINT to the whole process group, and the node with its defaults and the bundled demo model."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ros_harness import Diagnostics, NodeProcess, domain_id, make_small_model, ros_environment, ros_test_node, spin_once, spin_until

from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from moe3d_ros.ros.conversions import camera_info_msg, cloud_records, rgb_to_image_msg  # noqa: E402

pytestmark = pytest.mark.e2e  # starts ROS processes and talks to them over DDS
DOMAIN_ID = domain_id(2)
CAMERA_PROCESS = Path(__file__).resolve().parent / "camera_process.py"
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
RNG = np.random.default_rng(5)
SMALL = RNG.integers(0, 256, (120, 160, 3), dtype=np.uint8)
SOURCE_K = np.array([[150.0, 0, 79.5], [0, 150.0, 59.5], [0, 0, 1]])
FAST = {"filter.min_confidence": 0.0, "filter.max_edge_jump": math.inf, "diagnostics_period": 0.2}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_small_model(tmp_path_factory.mktemp("model") / "tiny")


@pytest.fixture(scope="module")
def ros_node():
    yield from ros_test_node(DOMAIN_ID, "moe3d_intake_test")


def _header(stamp_ns: int, frame_id: str = "cam_optical_frame") -> Header:
    header = Header(frame_id=frame_id)
    header.stamp.sec, header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    return header


def _stamp_ns(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def _pace(node, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        spin_once(node, timeout_sec=max(0.0, min(0.02, end - time.monotonic())))


def _camera_process(topic: str, qos: str, frames: int, rate: float, profile: bool) -> dict:
    env = ros_environment(DOMAIN_ID)
    if not profile:
        env.pop("FASTRTPS_DEFAULT_PROFILES_FILE")  # the camera driver's process: default DDS settings
    out = subprocess.run([sys.executable, str(CAMERA_PROCESS), "--topic", topic, "--qos", qos, "--frames", str(frames),
                          "--rate", str(rate)], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("qos, profile", [("default", False), ("sensor_data", True)],
                         ids=["reliable-camera-default-dds", "best-effort-camera-with-shm-profile"])
def test_frames_of_a_separate_camera_process_arrive(tmp_path, checkpoint, ros_node, qos, profile):
    """640x480 rgb8 at 5 Hz (900 KB a frame). A reliable camera with default DDS settings needs a
    reliable subscription (input_qos auto finds it); a best-effort camera needs the shared-memory
    profile in its own process (docs/node.md). Without it, see bench/bench_intake.py."""
    topic = f"/proc_{qos}/image_raw"
    proc = NodeProcess(DOMAIN_ID, {"checkpoint": str(checkpoint), "image_topics": [topic], "camera_info_topics": ["none"],
                                   **FAST}, tmp_path)
    try:
        diagnostics = Diagnostics(ros_node)
        name = f"moe3d: camera proc_{qos}"
        spin_until(ros_node, lambda: name in diagnostics.latest, 60, "the node's diagnostics", proc)
        frames = 40
        result = _camera_process(topic, qos, frames, 5.0, profile)
        assert result["published"] == frames
        spin_until(ros_node, lambda: int(diagnostics.value(name, "accepted")) >= 0.95 * frames, 10,
                   f"95% of {frames} frames accepted (got {diagnostics.value(name, 'accepted')})", proc)
        expected = "reliable" if qos == "default" else "best effort"
        assert diagnostics.value(name, "input_qos", "").startswith(expected)
        assert f"now subscribed {expected}" in proc.output() or qos == "sensor_data"
    finally:
        proc.stop()


class Camera:
    """One camera of the test process (reliable publisher, so input_qos auto subscribes reliable)
    with subscribers for its depth, camera_info and the cloud."""

    def __init__(self, node, name: str, proc: NodeProcess, info: bool = False) -> None:
        self.node, self.name, self.proc = node, name, proc
        self.image = node.create_publisher(Image, f"/{name}/image_raw", RELIABLE)
        self.info = node.create_publisher(CameraInfo, f"/{name}/camera_info", RELIABLE) if info else None
        self.depth: list[Image] = []
        self.infos: list[CameraInfo] = []
        self.clouds: list[PointCloud2] = []
        self.subs = [node.create_subscription(Image, f"/moe3d/{name}/depth/image", self.depth.append, RELIABLE),
                     node.create_subscription(CameraInfo, f"/moe3d/{name}/depth/camera_info", self.infos.append, RELIABLE),
                     node.create_subscription(PointCloud2, "/moe3d/points", self.clouds.append, RELIABLE)]
        spin_until(node, lambda: self.image.get_subscription_count() > 0 and all(s.get_publisher_count() > 0 for s in self.subs),
                   60, f"{name}'s topics to match", proc)
        _pace(node, 1.5)  # input_qos auto re-decides once a second: now reliable

    def publish(self, stamp_ns: int, frame_id: str = "cam_optical_frame", nanosec: int | None = None, rgb=SMALL) -> None:
        header = _header(stamp_ns, frame_id)
        if nanosec is not None:
            header.stamp.nanosec = nanosec
        self.image.publish(rgb_to_image_msg(rgb, "rgb8", header))

    def stamps(self) -> set[int]:
        return {_stamp_ns(m) for m in self.depth}

    def stream(self, seconds: float, rate: float = 10.0, offset_ns: int = 0, **kwargs) -> list[int]:
        sent = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            stamp = time.time_ns() + offset_ns
            self.publish(stamp, **kwargs)
            sent.append(stamp)
            _pace(self.node, 1.0 / rate)
        return sent


def test_stamp_faults_are_rejected_and_a_clock_reset_recovers(tmp_path, checkpoint, ros_node):
    proc = NodeProcess(DOMAIN_ID, {"checkpoint": str(checkpoint), "image_topics": ["/stamps/image_raw"],
                                   "camera_info_topics": ["none"], "keyframe_spacing": 0.0, **FAST}, tmp_path)
    try:
        camera = Camera(ros_node, "stamps", proc)
        diagnostics = Diagnostics(ros_node)
        name = "moe3d: camera stamps"
        camera.stream(1.0)
        spin_until(ros_node, lambda: camera.depth, 30, "the first depth", proc)
        future = 2145916800 * 1_000_000_000  # 2038: one frame from a broken clock
        # Depth 1: each bad frame is followed only once the node has counted it (a message right
        # behind another would replace it in the queue).
        camera.publish(future)
        spin_until(ros_node, lambda: int(diagnostics.value(name, "rejected_stamp_jump", "0")) >= 1, 10, "the 2038 stamp rejected", proc)
        camera.publish(time.time_ns(), nanosec=1_500_000_000)  # no clock has this nanosec
        spin_until(ros_node, lambda: int(diagnostics.value(name, "rejected_stamp", "0")) >= 1, 10, "the bad nanosec rejected", proc)
        after = camera.stream(2.0)
        spin_until(ros_node, lambda: camera.stamps() & set(after[-5:]), 20, "depth of frames after the 2038 stamp", proc)
        assert future not in camera.stamps()
        # The camera's clock is reset one hour back and stays there.
        jump_start = time.monotonic()
        jumped = []
        recovered_at = None
        while time.monotonic() - jump_start < 10 and recovered_at is None:
            jumped += camera.stream(0.1, offset_ns=-3600 * 1_000_000_000)
            if camera.stamps() & set(jumped):
                recovered_at = time.monotonic() - jump_start
        assert recovered_at is not None and recovered_at < 3.0, recovered_at  # adopted after 0.5 s, then one window
        spin_until(ros_node, lambda: int(diagnostics.value(name, "stamp_resyncs")) >= 1, 10, "the resync in diagnostics", proc)
        values = diagnostics.latest[name]
        assert int(values["rejected_stamp_jump"]) >= 2 and int(values["rejected_stamp"]) >= 1, values
        assert "re-synchronised" in proc.output()
        print(f"recovery after a 1 h clock jump: {recovered_at:.2f} s")
    finally:
        proc.stop()


def test_bad_camera_info_is_rejected_and_each_frame_uses_the_info_of_its_stamp(tmp_path, checkpoint, ros_node):
    proc = NodeProcess(DOMAIN_ID, {"checkpoint": str(checkpoint), "image_topics": ["/info/image_raw"], "keyframe_spacing": 0.0,
                                   "window_size": 1, **FAST}, tmp_path)
    try:
        camera = Camera(ros_node, "info", proc, info=True)
        diagnostics = Diagnostics(ros_node)
        camera.stream(0.5)  # image size known to the node
        bad = []
        for fx, fy, cx, cy, size in [(math.nan, 150, 79.5, 59.5, (160, 120)), (math.inf, 150, 79.5, 59.5, (160, 120)),
                                     (1e-300, 1e-300, 79.5, 59.5, (160, 120)), (150, 150, math.nan, 59.5, (160, 120)),
                                     (150, 150, 79.5, 59.5, (320, 240))]:
            stamp = time.time_ns()
            k = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]])
            camera.info.publish(camera_info_msg(k, size[0], size[1], _header(stamp)))
            camera.publish(stamp)
            bad.append(stamp)
            _pace(ros_node, 0.2)
        spin_until(ros_node, lambda: int(diagnostics.value("moe3d: camera info", "rejected_camera_info")) >= 5, 20,
                   "five rejected CameraInfo messages", proc)
        # Two CameraInfos first, then the older frame: it must use the older K (fx 150, not 300).
        t1 = time.time_ns()
        t2 = t1 + 100_000_000
        camera.info.publish(camera_info_msg(SOURCE_K, 160, 120, _header(t1)))
        _pace(ros_node, 0.2)  # depth 1: the next CameraInfo must not replace this one in the queue
        k2 = SOURCE_K.copy()
        k2[0, 0] = k2[1, 1] = 300.0
        camera.info.publish(camera_info_msg(k2, 160, 120, _header(t2)))
        _pace(ros_node, 0.3)
        camera.publish(t1)
        spin_until(ros_node, lambda: t1 in {_stamp_ns(m) for m in camera.infos}, 20, "depth of the first frame", proc)
        camera.publish(t2)
        spin_until(ros_node, lambda: t2 in {_stamp_ns(m) for m in camera.infos}, 20, "depth of the second frame", proc)
        by_stamp = {_stamp_ns(m): m for m in camera.infos}
        # depth registered to the camera image (output_size input): its own K, at its own size
        assert by_stamp[t1].k[0] == pytest.approx(150) and by_stamp[t2].k[0] == pytest.approx(300)
        assert (by_stamp[t1].width, by_stamp[t1].height) == (160, 120)
        for msg in camera.infos:
            assert np.isfinite(msg.k).all() and np.isfinite(msg.p).all()
        for cloud in camera.clouds:
            records = cloud_records(cloud)
            xyz = np.stack([records["x"], records["y"], records["z"]], -1)
            assert not np.isinf(xyz).any() and (np.isfinite(xyz).all(-1) | np.isnan(xyz).all(-1)).all()
        assert not {_stamp_ns(m) for m in camera.infos} & set(bad) or all(
            np.isfinite(m.k).all() for m in camera.infos if _stamp_ns(m) in bad)  # bad K never used: predicted or none
    finally:
        proc.stop()


def test_a_tiny_message_cannot_take_gigabytes(tmp_path, checkpoint, ros_node):
    proc = NodeProcess(DOMAIN_ID, {"checkpoint": str(checkpoint), "image_topics": ["/tall/image_raw"],
                                   "camera_info_topics": ["none"], **FAST}, tmp_path)
    try:
        camera = Camera(ros_node, "tall", proc)
        diagnostics = Diagnostics(ros_node)
        camera.stream(1.0)
        spin_until(ros_node, lambda: camera.depth, 30, "the first depth", proc)
        _pace(ros_node, 1.0)  # the last windows finish
        before = proc.rss_mb()
        tall = np.zeros((20000, 1, 3), np.uint8)  # 60 KB, well formed
        stamp = time.time_ns()
        camera.publish(stamp, rgb=tall)
        spin_until(ros_node, lambda: int(diagnostics.value("moe3d: camera tall", "rejected_size")) >= 1, 10, "the size rejection", proc)
        grown = proc.rss_mb() - before  # the message alone: no window ran since (before this check: 6.6 GB)
        after = camera.stream(1.0)
        spin_until(ros_node, lambda: camera.stamps() & set(after), 20, "depth after the tall image", proc)
        assert grown < 50, f"RSS grew {grown:.0f} MB"
        assert stamp not in camera.stamps()
        print(f"RSS after a 1x20000 image: {grown:+.1f} MB")
    finally:
        proc.stop()


def test_frame_ids_are_validated_and_a_camera_whose_frames_all_fail_is_error(tmp_path, checkpoint, ros_node):
    proc = NodeProcess(DOMAIN_ID, {"checkpoint": str(checkpoint), "image_topics": ["/fid/image_raw"],
                                   "camera_info_topics": ["none"], **FAST}, tmp_path)
    try:
        camera = Camera(ros_node, "fid", proc)
        diagnostics = Diagnostics(ros_node)
        name = "moe3d: camera fid"
        camera.stream(1.0)
        spin_until(ros_node, lambda: camera.depth, 30, "the first depth", proc)
        bad = camera.stream(7.0, frame_id="")  # every frame without a frame_id: for 7 s nothing can be published
        spin_until(ros_node, lambda: diagnostics.latest.get(name, {}).get("level") == b"\x02", 5, "ERROR for the dead camera", proc)
        assert "no output" in diagnostics.latest[name]["message"] and "frame_id" in diagnostics.latest[name]["message"]
        assert not camera.stamps() & set(bad)
        long_id = camera.stream(0.5, frame_id="x" * 10_000)
        good = camera.stream(2.0)
        spin_until(ros_node, lambda: camera.stamps() & set(good), 20, "depth after the bad frame_ids", proc)
        assert not camera.stamps() & set(long_id)
        assert all(len(m.header.frame_id) < 100 for m in camera.depth)
        assert "x" * 200 not in proc.output()  # hostile strings are shortened in the log
        spin_until(ros_node, lambda: diagnostics.latest[name]["level"] == b"\x01", 5, "WARN while the bad messages are recent", proc)
    finally:
        proc.stop()


def test_each_cameras_outputs_go_out_once_per_stamp(tmp_path, checkpoint, ros_node):
    """Camera B at 1 Hz beside camera A at 8 Hz: B's frame is in every window, its outputs once."""
    proc = NodeProcess(DOMAIN_ID, {"checkpoint": str(checkpoint), "image_topics": ["/fast/image_raw", "/slow/image_raw"],
                                   "camera_info_topics": ["none", "none"], **FAST}, tmp_path)
    try:
        fast = Camera(ros_node, "fast", proc)
        slow = Camera(ros_node, "slow", proc)
        start = time.monotonic()
        tick = 0
        while time.monotonic() - start < 5.0:
            stamp = time.time_ns()
            fast.publish(stamp)
            if tick % 8 == 0:
                slow.publish(stamp + 1)
            tick += 1
            _pace(ros_node, 1 / 8)
        _pace(ros_node, 1.0)
        stamps = [_stamp_ns(m) for m in slow.depth]
        assert stamps and len(stamps) == len(set(stamps)), stamps
        assert len(fast.depth) > len(stamps)  # more windows than B's outputs: B's repeats were not re-published
    finally:
        proc.stop()


def test_sigint_to_the_process_group_shuts_down_cleanly(tmp_path, checkpoint, ros_node):
    """A terminal's Ctrl-C under ros2 launch: the node gets SIGINT from the terminal and from launch."""
    proc = NodeProcess(DOMAIN_ID, {"checkpoint": str(checkpoint), "image_topics": ["/sig/image_raw"],
                                   "camera_info_topics": ["none"]}, tmp_path, new_session=True)
    try:
        camera = Camera(ros_node, "sig", proc)
        camera.stream(1.5)  # the worker is busy with windows when the signal comes
        os.killpg(proc.proc.pid, signal.SIGINT)
        time.sleep(0.05)
        os.killpg(proc.proc.pid, signal.SIGINT)
        code = proc.wait_exit(timeout=30)
        output = proc.output()
        assert code == 0, output
        assert "Traceback" not in output and "KeyboardInterrupt" not in output and "context is invalid" not in output, output
    finally:
        proc.stop()


def test_defaults_and_the_demo_model_publish_depth_and_unknown_parameters_are_named(tmp_path, ros_node):
    """No checkpoint, default filters, default DDS settings: valid depth from the bundled model."""
    params = tmp_path / "params.yaml"
    params.write_text("/**:\n  ros__parameters:\n    image_topics: ['/demo_defaults/image_raw']\n    windw_size: 3\n")
    proc = NodeProcess(DOMAIN_ID, {}, tmp_path, params_file=params, dds_profile=False)
    try:
        camera = Camera(ros_node, "demo_defaults", proc)
        rgb = np.random.default_rng(1).integers(0, 256, (480, 640, 3), dtype=np.uint8)
        deadline = time.monotonic() + 60
        while not camera.depth:
            assert time.monotonic() < deadline, proc.output()[-3000:]
            camera.publish(time.time_ns(), rgb=rgb)
            _pace(ros_node, 0.5)
        depth = np.frombuffer(camera.depth[-1].data, np.float32)
        assert np.isfinite(depth).mean() > 0.05, np.isfinite(depth).mean()
        assert "unknown parameter 'windw_size' ignored (did you mean window_size?)" in proc.output()
    finally:
        proc.stop()


def test_input_qos_follows_the_publishers_and_qos_overrides_win(tmp_path, checkpoint, ros_node):
    params = tmp_path / "params.yaml"
    params.write_text("/**:\n  ros__parameters:\n    qos_overrides:\n      /ovr/image_raw:\n        subscription:\n"
                      "          reliability: best_effort\n")
    proc = NodeProcess(DOMAIN_ID, {"checkpoint": str(checkpoint), "image_topics": ["/auto/image_raw", "/ovr/image_raw"],
                                   "camera_info_topics": ["none", "none"], "diagnostics_period": 0.2}, tmp_path, params_file=params)
    try:
        diagnostics = Diagnostics(ros_node)
        reliable = ros_node.create_publisher(Image, "/auto/image_raw", RELIABLE)
        ros_node.create_publisher(Image, "/ovr/image_raw", RELIABLE)
        qos = lambda camera: diagnostics.value(f"moe3d: camera {camera}", "input_qos", "")  # noqa: E731
        spin_until(ros_node, lambda: qos("auto").startswith("reliable"), 30, "auto to subscribe reliable", proc)
        assert qos("ovr").startswith("best effort") and "QoS override" in qos("ovr")
        ros_node.destroy_publisher(reliable)
        ros_node.create_publisher(Image, "/auto/image_raw", QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
        spin_until(ros_node, lambda: qos("auto").startswith("best effort"), 30, "auto to follow a best-effort publisher", proc)
        assert "now subscribed best effort" in proc.output()
    finally:
        proc.stop()
