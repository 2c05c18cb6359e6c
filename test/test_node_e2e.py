"""moe3d_node end to end: its own process, real rclpy over DDS, a small real model.

The test process publishes camera images and CameraInfo and checks every output: encodings,
shapes, frame_ids, stamps equal to the inputs', NaN where filtered, cloud points equal to depth
unprojected with the published camera_info and poses; then bad inputs, a silent camera and
cameras of different sizes, with the node serving throughout.
"""
from __future__ import annotations

import array
import math
import time

import cv2
import numpy as np
import pytest
import torch

from corrupt_images import png_with_broken_deflate
from ros_harness import NUM_EXPERTS, NodeProcess, domain_id, make_small_model, republish_until, ros_test_node, spin_once, spin_until

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from geometry_msgs.msg import PoseArray  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from moe3d_ros.model.geometry import quaternion_to_matrix, unproject_depth  # noqa: E402
from moe3d_ros.ros.conversions import camera_info_msg, cloud_records, rgb_to_image_msg  # noqa: E402

pytestmark = pytest.mark.e2e  # starts ROS processes and talks to them over DDS
DOMAIN_ID = domain_id(3)
MIN_CONFIDENCE = 1.9
SENSOR_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
OUT_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
SOURCE_K = np.array([[150.0, 0, 79.5], [0, 150.0, 59.5], [0, 0, 1]])


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_small_model(tmp_path_factory.mktemp("model") / "tiny")


@pytest.fixture(scope="module")
def ros_node():
    yield from ros_test_node(DOMAIN_ID, "moe3d_test")


NODE_PARAMS = {
    "image_topics": ["/cam_a/image_raw", "/cam_b/image_raw/compressed"],
    "camera_info_topics": ["", "none"],
    "window_size": 3,
    "keyframe_spacing": 0.0,
    "stale_timeout": 1.5,
    "filter.min_confidence": MIN_CONFIDENCE,
    "filter.max_gate_entropy": math.inf,
    "filter.max_edge_jump": math.inf,
    "diagnostics_period": 0.2,
    "output_size": "model",  # these checks compare the images with the cloud pixel for pixel (test_node_outputs: input size)
}


@pytest.fixture(scope="module")
def node_process(checkpoint, tmp_path_factory):
    proc = NodeProcess(DOMAIN_ID, {**NODE_PARAMS, "checkpoint": str(checkpoint)}, tmp_path_factory.mktemp("logs"))
    yield proc
    proc.stop()


class Harness:
    """Publishers for two cameras and subscribers for every output, keyed by stamp."""

    def __init__(self, node, proc: NodeProcess) -> None:
        self.node, self.proc = node, proc
        self.image_a = node.create_publisher(Image, "/cam_a/image_raw", SENSOR_QOS)
        self.info_a = node.create_publisher(CameraInfo, "/cam_a/camera_info", SENSOR_QOS)
        self.image_b = node.create_publisher(CompressedImage, "/cam_b/image_raw/compressed", SENSOR_QOS)
        self.received: dict[str, list] = {}
        topics = {"points": PointCloud2, "poses": PoseArray}
        for camera in ("cam_a", "cam_b"):
            topics.update({f"{camera}/depth/image": Image, f"{camera}/depth/camera_info": CameraInfo,
                           f"{camera}/confidence": Image, f"{camera}/gating": Image, f"{camera}/gating/color": Image})
        self.subs = [node.create_subscription(t, f"/moe3d/{name}", lambda m, n=name: self.received.setdefault(n, []).append(m), OUT_QOS)
                     for name, t in topics.items()]
        self.diagnostics: list[DiagnosticArray] = []
        node.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 10)
        spin_until(node, lambda: self.image_a.get_subscription_count() > 0 and self.image_b.get_subscription_count() > 0
                   and all(s.get_publisher_count() > 0 for s in self.subs), 60, "the node's topics to match", proc)

    @staticmethod
    def now() -> float:
        """A stamp from the wall clock, as a camera driver gives (the node rejects stamps that jump)."""
        return round(time.time(), 3)

    def header(self, stamp_s: float, frame_id: str) -> Header:
        header = Header(frame_id=frame_id)
        header.stamp.sec, header.stamp.nanosec = int(stamp_s), int(round((stamp_s % 1) * 1e9))
        return header

    def publish(self, stamp_s: float, size_a=(120, 160), size_b=(120, 160), a=True, b=True) -> None:
        rng = np.random.default_rng(int(stamp_s * 1000))
        if a:
            rgb = rng.integers(0, 256, size_a + (3,), dtype=np.uint8)
            header = self.header(stamp_s, "cam_a_optical_frame")
            self.info_a.publish(camera_info_msg(SOURCE_K, size_a[1], size_a[0], header))
            self.image_a.publish(rgb_to_image_msg(rgb, "bgr8", header))
        if b:
            rgb = rng.integers(0, 256, size_b + (3,), dtype=np.uint8)
            ok, png = cv2.imencode(".png", rgb)
            self.image_b.publish(CompressedImage(header=self.header(stamp_s + 0.001, "cam_b_optical_frame"), format="png",
                                                 data=array.array("B", png.tobytes())))

    def by_stamp(self, name: str, stamp_s: float):
        sec, nanosec = int(stamp_s), int(round((stamp_s % 1) * 1e9))
        return [m for m in self.received.get(name, []) if (m.header.stamp.sec, m.header.stamp.nanosec) == (sec, nanosec)]

    def wait_for(self, names: list[str], stamp_s: float, what: str, timeout: float = 60) -> None:
        spin_until(self.node, lambda: all(self.by_stamp(n, stamp_s) for n in names), timeout, what, self.proc)

    def publish_until(self, names: list[str], stamp_s: float, timeout: float = 60, ready=None, **kwargs) -> None:
        """Best-effort inputs can be lost: publish the frame again until its outputs arrive
        (and `ready()` holds, when given). Repeats of a received frame are dropped as duplicates."""
        done = lambda: all(self.by_stamp(n, stamp_s) for n in names) and (ready is None or ready())  # noqa: E731
        republish_until(self.node, lambda: self.publish(stamp_s, **kwargs), done, 5, "outputs", self.proc, timeout)

    def diagnostic(self, name: str) -> dict[str, str]:
        for array_msg in reversed(self.diagnostics):
            for status in array_msg.status:
                if status.name == name:
                    return {"message": status.message, "level": status.level, **{kv.key: kv.value for kv in status.values}}
        return {}


@pytest.fixture(scope="module")
def harness(ros_node, node_process):
    return Harness(ros_node, node_process)


CAMERA_A = ["cam_a/depth/image", "cam_a/depth/camera_info", "cam_a/confidence", "cam_a/gating", "cam_a/gating/color"]
CAMERA_B = [n.replace("cam_a", "cam_b") for n in CAMERA_A]


def _image_array(msg: Image, dtype, channels=1) -> np.ndarray:
    shape = (msg.height, msg.width) + ((channels,) if channels > 1 else ())
    return np.frombuffer(msg.data, dtype=dtype).reshape(shape)


def test_every_output_is_right(harness):
    stamp = harness.now()
    # Ready once the window that held both cameras has delivered its cloud and its poses (an
    # earlier window may have held camera A alone; poses are published after the cloud).
    both_cameras = lambda: (any(c.height == 2 * 168 for c in harness.by_stamp("points", stamp))  # noqa: E731
                            and any(len(p.poses) >= 2 for p in harness.by_stamp("poses", stamp)))
    harness.publish_until(CAMERA_A + ["poses"], stamp, ready=both_cameras)
    harness.wait_for(CAMERA_B, stamp + 0.001, "camera B's outputs (stamped 1 ms after camera A's)")
    # Camera A: rgb 160x120 -> model 224x168; intrinsics from its CameraInfo, mapped to 224x168.
    # The newest of each output belongs to the window that held both cameras.
    depth = harness.by_stamp("cam_a/depth/image", stamp)[-1]
    info = harness.by_stamp("cam_a/depth/camera_info", stamp)[-1]
    conf = harness.by_stamp("cam_a/confidence", stamp)[-1]
    gating = harness.by_stamp("cam_a/gating", stamp)[-1]
    color = harness.by_stamp("cam_a/gating/color", stamp)[-1]
    for msg in (depth, info, conf, gating, color):
        assert msg.header.frame_id == "cam_a_optical_frame"
        assert (msg.height, msg.width) == (168, 224)
    assert info.header == depth.header
    assert (depth.encoding, conf.encoding, gating.encoding, color.encoding) == ("32FC1", "32FC1", "mono8", "rgb8")
    scale = 224 / 160
    expected_k = np.array([[150 * scale, 0, 80 * scale - 0.5], [0, 150 * scale, 60 * scale - 0.5], [0, 0, 1]])
    np.testing.assert_allclose(np.array(info.k).reshape(3, 3), expected_k, rtol=1e-6)
    depth_a = _image_array(depth, np.float32)
    conf_a = _image_array(conf, np.float32)
    assert np.isnan(depth_a).any() and np.isfinite(depth_a).any()
    np.testing.assert_array_equal(np.isnan(depth_a), conf_a < MIN_CONFIDENCE)  # NaN exactly where filtered
    assert _image_array(gating, np.uint8).max() < NUM_EXPERTS
    # Camera B: compressed, no CameraInfo: predicted intrinsics, its own stamp and frame.
    depth_b_msg = harness.by_stamp("cam_b/depth/image", stamp + 0.001)
    assert depth_b_msg and depth_b_msg[-1].header.frame_id == "cam_b_optical_frame"
    info_b = harness.by_stamp("cam_b/depth/camera_info", stamp + 0.001)[-1]
    # Cloud and poses: in camera A's optical frame, stamped like camera A's image.
    cloud = [c for c in harness.by_stamp("points", stamp) if c.height == 2 * 168][-1]
    poses = [p for p in harness.by_stamp("poses", stamp) if len(p.poses) >= 2][-1]
    assert cloud.header.frame_id == poses.header.frame_id == "cam_a_optical_frame"
    assert (cloud.height, cloud.width) == (2 * 168, 224)
    records = cloud_records(cloud)
    xyz = np.stack([records["x"], records["y"], records["z"]], axis=-1)
    for row, (depth_msg_i, info_i, pose) in enumerate(
        [(depth, info, poses.poses[0]), (depth_b_msg[-1], info_b, poses.poses[1])]
    ):
        d = _image_array(depth_msg_i, np.float32)
        camera_points = unproject_depth(torch.from_numpy(np.nan_to_num(d)), torch.tensor(info_i.k).view(3, 3).float()).numpy()
        q = [pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w]
        rotation = quaternion_to_matrix(torch.tensor(q, dtype=torch.float64)).numpy()
        position = np.array([pose.position.x, pose.position.y, pose.position.z])
        expected = camera_points @ rotation.T + position
        expected[np.isnan(d)] = np.nan
        np.testing.assert_allclose(xyz[row * 168 : (row + 1) * 168], expected, atol=1e-3, rtol=1e-4, equal_nan=True)
    assert poses.poses[0].orientation.w == pytest.approx(1.0) and poses.poses[0].position.x == pytest.approx(0.0, abs=1e-6)
    spin_until(harness.node, lambda: harness.diagnostic("moe3d: engine").get("windows", "0") != "0", 10, "diagnostics", harness.proc)
    engine = harness.diagnostic("moe3d: engine")
    assert "relative" in engine["scale"] and float(engine["inference_time_s"]) > 0
    assert "tiny random test model" in engine["model"]


def _publish_until_counted(harness, publish, camera: str, counter: str) -> None:
    """Inputs are best effort with depth 1: repeat a bad message until the node has counted it
    (in the camera's status, or the engine's for camera "engine")."""
    name = "moe3d: engine" if camera == "engine" else f"moe3d: camera {camera}"
    count = lambda: int(harness.diagnostic(name).get(counter, 0))  # noqa: E731
    before = count()
    republish_until(harness.node, publish, lambda: count() > before, 0.3, f"{counter} of {camera} to grow", harness.proc, 30)


def test_bad_inputs_are_dropped_counted_and_the_node_keeps_serving(harness):
    harness.publish_until(CAMERA_A, harness.now())  # diagnostics flowing, node serving
    bad_stamp = harness.now()
    header = harness.header(bad_stamp, "cam_a_optical_frame")
    rgb = np.zeros((120, 160, 3), np.uint8)
    wrong_encoding = rgb_to_image_msg(rgb, "rgb8", header)
    wrong_encoding.encoding = "yuv422"
    zero = Image(header=header, encoding="rgb8", height=0, width=0, step=0)
    short = rgb_to_image_msg(rgb, "rgb8", header)
    short.data = array.array("B", bytes(100))
    corrupt = CompressedImage(header=harness.header(bad_stamp, "cam_b_optical_frame"), format="jpeg",
                              data=array.array("B", b"\xff\xd8\xff garbage"))
    for msg in (wrong_encoding, zero, short):
        _publish_until_counted(harness, lambda m=msg: harness.image_a.publish(m), "cam_a", "rejected")
    _publish_until_counted(harness, lambda: harness.image_b.publish(corrupt), "cam_b", "rejected_corrupt")
    # A PNG that passes every check before decoding but not the decoder: libpng's own line on
    # stderr is caught and reaches /diagnostics, and nothing is published for it.
    broken_stamps: list[float] = []

    def publish_broken_png() -> None:
        broken_stamps.append(harness.now())
        harness.image_b.publish(CompressedImage(header=harness.header(broken_stamps[-1], "cam_b_optical_frame"), format="png",
                                                data=array.array("B", png_with_broken_deflate(rgb))))

    _publish_until_counted(harness, publish_broken_png, "engine", "decoder_messages")
    good = harness.now()
    harness.publish_until(CAMERA_A + ["points"], good)
    # Out-of-order and duplicate stamps for camera A.
    late: list[float] = []

    def newest_then(offset: float) -> None:
        """A fresh frame, then one `offset` seconds older (0: the same stamp again), promptly, as a
        driver that reorders or repeats frames sends them. Depth 1: the second goes out once the
        node has taken the first (else it would replace the first in the queue and be the newest)."""
        accepted = int(harness.diagnostic("moe3d: camera cam_a").get("accepted", 0))
        newest = harness.now()
        harness.publish(newest, b=False)
        spin_until(harness.node, lambda: int(harness.diagnostic("moe3d: camera cam_a").get("accepted", 0)) > accepted, 10,
                   "the fresh frame accepted", harness.proc)
        harness.publish(newest - offset, b=False)
        if offset > 0:
            late.append(newest - offset)

    _publish_until_counted(harness, lambda: newest_then(0.05), "cam_a", "rejected_out_of_order")
    _publish_until_counted(harness, lambda: newest_then(0.0), "cam_a", "rejected_duplicate")
    harness.publish_until(CAMERA_A, harness.now())
    assert not harness.by_stamp("cam_a/depth/image", bad_stamp) and not harness.by_stamp("cam_b/depth/image", bad_stamp)
    assert not any(harness.by_stamp("cam_b/depth/image", stamp) for stamp in broken_stamps)
    assert late and not any(harness.by_stamp("cam_a/depth/image", stamp) for stamp in late)
    log = harness.proc.output()
    for text in ("yuv422", "zero-sized", "expected step x height", "JPEG is truncated", "out_of_order", "duplicate",
                 "image decoder: libpng error: IDAT"):
        assert text in log, text


def test_cameras_of_different_sizes_in_one_window(harness):
    stamp = harness.now()
    # Sizes differ, so the cloud of a window with both cameras cannot be organised: it is a flat
    # list of the points that passed the filter.
    unorganised = lambda: any(c.height == 1 for c in harness.by_stamp("points", stamp))  # noqa: E731
    harness.publish_until(["cam_a/depth/image"], stamp, size_a=(120, 160), size_b=(100, 200), ready=unorganised)
    harness.wait_for(["cam_b/depth/image"], stamp + 0.001, "camera B's depth")
    depth_b = harness.by_stamp("cam_b/depth/image", stamp + 0.001)[0]
    # 200x100 -> 224 wide, round(100 * 224 / 200 / 14) * 14 = 112 rows (its own content, unpadded).
    assert (depth_b.height, depth_b.width) == (112, 224)
    cloud = [c for c in harness.by_stamp("points", stamp) if c.height == 1][-1]
    assert cloud.width > 0 and np.isfinite(cloud_records(cloud)["x"]).all()


def test_a_silent_camera_is_reported_and_the_other_served(harness):
    stamp = harness.now()
    deadline = time.monotonic() + 30
    while not harness.diagnostic("moe3d: camera cam_b").get("message", "").startswith("silent"):  # camera A streams at 10 Hz, B is silent
        assert time.monotonic() < deadline, "camera B was never reported silent"
        stamp += 0.1
        harness.publish(stamp, b=False)
        pace = time.monotonic() + 0.1
        while time.monotonic() < pace:
            spin_once(harness.node, timeout_sec=0.02)
    stamp += 0.1
    harness.publish_until(["cam_a/depth/image", "points"], stamp, b=False)
    assert harness.by_stamp("points", stamp)[0].height == 168  # camera A alone
    # the count reaches /diagnostics with its next message, which may come after the cloud
    spin_until(harness.node, lambda: int(harness.diagnostic("moe3d: camera cam_b").get("stale_windows", 0)) > 0, 10,
               "windows without camera B counted in /diagnostics", harness.proc)


def test_run_time_parameter_changes_are_validated(harness):
    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter

    client = harness.node.create_client(SetParameters, "/moe3d/moe3d_node/set_parameters")
    spin_until(harness.node, client.service_is_ready, 20, "the parameter service", harness.proc)

    def set_param(name, value):
        future = client.call_async(SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()]))
        spin_until(harness.node, future.done, 20, f"setting {name}", harness.proc)
        return future.result().results[0]

    assert set_param("filter.min_depth", 5.0).successful
    crossed = set_param("filter.max_depth", 1.0)
    assert not crossed.successful and "min_depth" in crossed.reason
    bad = set_param("fusion", "median")
    assert not bad.successful and "fusion" in bad.reason
    assert not set_param("window_size", 8).successful  # read-only after start-up
    assert set_param("filter.edge_test", "between").successful
    unknown = set_param("filter.edge_test", "both")
    assert not unknown.successful and "filter.edge_test" in unknown.reason
    assert set_param("filter.edge_test", "jump").successful
    assert set_param("filter.min_depth", 0.0).successful
