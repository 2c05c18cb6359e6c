"""What a mapping stack gets from moe3d_node, over DDS with the node in its own process: depth,
confidence and camera_info registered to the camera image (its size and K), a per-camera cloud
in the camera's optical frame, REP-117 +Inf beyond the range filter, distorted CameraInfo made
pinhole (the published camera_info has D = 0 and K = P) and unknown distortion refused."""
from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch

from ros_harness import Diagnostics, NodeProcess, domain_id, make_small_model, republish_until, ros_test_node, spin_until

from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from moe3d_ros.model.geometry import unproject_depth  # noqa: E402
from moe3d_ros.ros.conversions import camera_info_msg, cloud_records, rgb_to_image_msg  # noqa: E402

pytestmark = pytest.mark.e2e  # starts ROS processes and talks to them over DDS
DOMAIN_ID = domain_id(13)
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
SIZE = (150, 200)  # height, width: the model sees 224 x 168 (resized, then the 14-px grid)
K = np.array([[170.0, 0, 99.5], [0, 170.0, 74.5], [0, 0, 1]])
MAX_DEPTH = 1.03  # the random test model predicts 1.00-1.06 here: part of the image lies beyond


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_small_model(tmp_path_factory.mktemp("model") / "tiny")


@pytest.fixture(scope="module")
def ros_node():
    yield from ros_test_node(DOMAIN_ID, "moe3d_outputs_test")


def _header(stamp_ns: int) -> Header:
    header = Header(frame_id="front_optical_frame")
    header.stamp.sec, header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    return header


def _stamp(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


class Camera:
    def __init__(self, node, proc, name: str) -> None:
        self.node, self.proc = node, proc
        self.image = node.create_publisher(Image, f"/{name}/image_raw", RELIABLE)
        self.info = node.create_publisher(CameraInfo, f"/{name}/camera_info", RELIABLE)
        self.received: dict[str, list] = {}
        outputs = {"depth/image": Image, "depth/camera_info": CameraInfo, "confidence": Image, "points": PointCloud2}
        for topic, kind in outputs.items():
            node.create_subscription(kind, f"/moe3d/{name}/{topic}", lambda m, t=topic: self.received.setdefault(t, []).append(m),
                                     RELIABLE)
        node.create_subscription(PointCloud2, "/moe3d/points", lambda m: self.received.setdefault("fused", []).append(m), RELIABLE)
        spin_until(node, lambda: self.image.get_subscription_count() > 0 and self.info.get_subscription_count() > 0, 60,
                   "the node", proc)

    def send_info(self, stamp: int, info: CameraInfo, diagnostics: Diagnostics, name: str) -> None:
        """The CameraInfo of `stamp`, until the node holds one (another topic than the image's:
        it could arrive after the frame, which then takes the predicted intrinsics)."""
        def publish() -> None:
            info.header = _header(stamp)
            self.info.publish(info)
        republish_until(self.node, publish, lambda: diagnostics.value(f"moe3d: camera {name}", "camera_info", "no") == "yes",
                        0.5, "the CameraInfo", self.proc, 30)

    def frame(self, stamp: int) -> None:
        rgb = np.random.default_rng(stamp % 1000).integers(0, 256, SIZE + (3,), dtype=np.uint8)
        self.image.publish(rgb_to_image_msg(rgb, "rgb8", _header(stamp)))

    def outputs_of(self, stamp: int, topics) -> dict:
        found = {t: [m for m in self.received.get(t, []) if _stamp(m) == stamp] for t in topics}
        return {t: v[-1] for t, v in found.items() if v}


def test_outputs_are_registered_to_the_camera_with_a_cloud_in_its_frame(tmp_path, checkpoint, ros_node):
    proc = NodeProcess(DOMAIN_ID, {"checkpoint": str(checkpoint), "image_topics": ["/front/image_raw"], "window_size": 1,
                                   "keyframe_spacing": 0.0, "filter.min_confidence": 0.0, "filter.max_edge_jump": math.inf,
                                   "filter.max_depth": MAX_DEPTH, "diagnostics_period": 0.2}, tmp_path)
    try:
        camera = Camera(ros_node, proc, "front")
        stamp = time.time_ns()
        topics = ("depth/image", "depth/camera_info", "confidence", "points", "fused")
        camera.send_info(stamp, camera_info_msg(K, SIZE[1], SIZE[0], Header()), Diagnostics(ros_node), "front")
        republish_until(ros_node, lambda: camera.frame(stamp),
                        lambda: len(camera.outputs_of(stamp, topics)) == len(topics), 5, "outputs", proc, 60)
        out = camera.outputs_of(stamp, topics)
        depth = np.frombuffer(out["depth/image"].data, np.float32).reshape(out["depth/image"].height, -1)
        info = out["depth/camera_info"]
        assert depth.shape == SIZE and (info.height, info.width) == SIZE
        assert out["confidence"].height == SIZE[0] and out["confidence"].width == SIZE[1]
        np.testing.assert_allclose(np.array(info.k).reshape(3, 3), K)
        assert not any(info.d)
        # REP-117: beyond filter.max_depth is +Inf (free space up to the range), not NaN
        assert np.isposinf(depth).any() and not np.isnan(depth).all()
        # The per-camera cloud is in the camera's own frame, on the model's grid; the registered
        # depth unprojected with the published K lands on it (each camera pixel on its nearest
        # model pixel: the same depth, at most a model pixel sideways).
        own = out["points"]
        assert own.header.frame_id == "front_optical_frame" and (own.height, own.width) == (168, 224)
        records = cloud_records(own)
        model_xyz = np.stack([records["x"], records["y"], records["z"]], axis=-1)
        fused = cloud_records(out["fused"])  # one camera: the reference itself
        np.testing.assert_allclose(np.stack([fused["x"], fused["y"], fused["z"]], axis=-1), model_xyz, atol=1e-5)
        finite = np.isfinite(depth)
        points = unproject_depth(torch.from_numpy(np.where(finite, depth, 0)), torch.from_numpy(K).float()).numpy()[finite]
        v, u = np.nonzero(finite)
        sx, sy = 224 / SIZE[1], 168 / SIZE[0]
        cols = np.clip(np.floor((u + 0.5) * sx - 0.5 + 0.5).astype(int), 0, 223)
        rows = np.clip(np.floor((v + 0.5) * sy - 0.5 + 0.5).astype(int), 0, 167)
        nearest = model_xyz[rows, cols]
        np.testing.assert_allclose(points[:, 2], nearest[:, 2], rtol=1e-5)
        assert (np.linalg.norm(points[:, :2] - nearest[:, :2], axis=-1) <= nearest[:, 2] * 1.0 / (170 * sx) + 1e-4).all()
        far = np.isposinf(depth)
        far_points = model_xyz[np.clip(np.floor((np.nonzero(far)[0] + 0.5) * sy).astype(int), 0, 167),
                               np.clip(np.floor((np.nonzero(far)[1] + 0.5) * sx).astype(int), 0, 223)]
        assert np.isposinf(far_points[:, 2]).all()  # at infinity along its ray in the organised cloud
    finally:
        proc.stop()


def test_distorted_camera_info_is_made_pinhole_and_unknown_distortion_refused(tmp_path, checkpoint, ros_node):
    proc = NodeProcess(DOMAIN_ID, {"checkpoint": str(checkpoint), "image_topics": ["/wide/image_raw"], "window_size": 1,
                                   "keyframe_spacing": 0.0, "diagnostics_period": 0.2}, tmp_path)
    try:
        camera = Camera(ros_node, proc, "wide")
        diagnostics = Diagnostics(ros_node)
        p = np.hstack([K * [[0.8], [0.8], [1.0]], np.zeros((3, 1))])
        distorted = camera_info_msg(K, SIZE[1], SIZE[0], Header())
        distorted.d, distorted.p = [-0.3, 0.1, 0.0, 0.0, 0.0], p.reshape(-1).tolist()
        stamp = time.time_ns()
        camera.send_info(stamp, distorted, diagnostics, "wide")
        republish_until(ros_node, lambda: camera.frame(stamp),
                        lambda: "depth/camera_info" in camera.outputs_of(stamp, ["depth/camera_info"]), 5, "outputs", proc, 60)
        info = camera.outputs_of(stamp, ["depth/camera_info"])["depth/camera_info"]
        np.testing.assert_allclose(np.array(info.k).reshape(3, 3), p[:, :3])  # the rectified image's camera
        assert not any(info.d)
        odd = camera_info_msg(K, SIZE[1], SIZE[0], Header())
        odd.distortion_model, odd.d = "double_sphere", [0.1, 0.5]
        def send_odd() -> None:
            odd.header = _header(time.time_ns())
            camera.info.publish(odd)

        republish_until(ros_node, send_odd,
                        lambda: int(diagnostics.value("moe3d: camera wide", "rejected_camera_info")) > 0, 1, "refusal", proc, 30)
        assert "image_rect" in diagnostics.value("moe3d: camera wide", "last_rejection", "")
    finally:
        proc.stop()
