"""moe3d_node on the onnxruntime backend, over DDS as users run it: the same window published by
a torch-backend node and an onnxruntime-backend node gives the same depth and cloud (1e-4), the
provider in use is in /diagnostics, and an export that does not serve the window size is refused
at start-up with one line that names what to export."""
from __future__ import annotations

import time

import numpy as np
import pytest

from ros_harness import Diagnostics, NodeProcess, domain_id, make_small_model, republish_until, ros_test_node, spin_until

from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from moe3d_ros.io.checkpoint import load_model  # noqa: E402
from moe3d_ros.ros.conversions import camera_info_msg, cloud_records, rgb_to_image_msg  # noqa: E402

pytest.importorskip("onnxruntime", reason="the optional extra .[onnx] is not installed")
from moe3d_ros.io.onnx_export import export_onnx  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # ROS processes over DDS; exports ONNX
DOMAIN_ID = domain_id(10)
QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
K = np.array([[150.0, 0, 79.5], [0, 150.0, 59.5], [0, 0, 1]])
PARAMS = {"image_topics": ["/cam/image_raw"], "window_size": 1, "filter.max_edge_jump": 0.2, "diagnostics_period": 0.2}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The e2e tests' small model and its export for 1-frame windows at 224x168 (160x120 images)."""
    folder = tmp_path_factory.mktemp("onnx")
    checkpoint = make_small_model(folder / "checkpoint")
    model, _ = load_model(checkpoint)
    export_onnx(model, [1, 2], 224, 168, folder / "model.onnx", "tiny random test model")  # one file, a dynamic frame axis
    return checkpoint, folder / "model.onnx"


@pytest.fixture(scope="module")
def ros_node():
    yield from ros_test_node(DOMAIN_ID, "moe3d_onnx_test")


def serve_one_window(ros_node, parameters: dict, log_dir) -> tuple[np.ndarray, np.ndarray, dict[str, str]]:
    """Start a node, publish one fixed frame (reliable, as a driver with default QoS does) and
    return its depth image, its cloud's xyz and the engine's diagnostics."""
    proc = NodeProcess(DOMAIN_ID, {**PARAMS, **parameters}, log_dir)
    try:  # a camera driver in the test process: reliable, depth 10, as ROS 2's default QoS
        image_pub = ros_node.create_publisher(Image, "/cam/image_raw", QOS)
        info_pub = ros_node.create_publisher(CameraInfo, "/cam/camera_info", QOS)
        received: dict[str, list] = {"depth": [], "points": []}
        subs = [ros_node.create_subscription(Image, "/moe3d/cam/depth/image", received["depth"].append, QOS),
                ros_node.create_subscription(PointCloud2, "/moe3d/points", received["points"].append, QOS)]
        diagnostics = Diagnostics(ros_node)
        spin_until(ros_node, lambda: image_pub.get_subscription_count() > 0 and all(s.get_publisher_count() for s in subs),
                   60, "the node's topics to match", proc)
        header = Header(frame_id="cam_optical_frame")
        stamp = time.time()
        header.stamp.sec, header.stamp.nanosec = int(stamp), int((stamp % 1) * 1e9)
        rgb = np.random.default_rng(7).integers(0, 256, (120, 160, 3), dtype=np.uint8)

        def send_info() -> None:
            info_pub.publish(camera_info_msg(K, 160, 120, header))

        def send_frame() -> None:  # the same stamp again: a duplicate once served
            send_info()
            image_pub.publish(rgb_to_image_msg(rgb, "rgb8", header))

        # The CameraInfo first: a frame without one is unprojected with the model's intrinsics.
        republish_until(ros_node, send_info, lambda: diagnostics.value("moe3d: camera cam", "camera_info", "no") == "yes",
                        0.5, "the CameraInfo in /diagnostics", proc)
        republish_until(ros_node, send_frame, lambda: received["depth"] and received["points"], 3, "depth and cloud", proc)
        spin_until(ros_node, lambda: diagnostics.value("moe3d: engine", "windows") == "1", 30, "the window in /diagnostics", proc)
        msg = received["depth"][0]
        depth = np.frombuffer(bytes(msg.data), np.float32).reshape(msg.height, msg.width)
        cloud = cloud_records(received["points"][0])
        xyz = np.stack([cloud["x"], cloud["y"], cloud["z"]], axis=-1)
        for sub in subs:
            ros_node.destroy_subscription(sub)
        ros_node.destroy_publisher(image_pub)
        ros_node.destroy_publisher(info_pub)
        return depth, xyz, diagnostics.latest["moe3d: engine"]
    finally:
        proc.stop()


def test_both_backends_publish_the_same_depth_and_cloud_for_the_same_window(ros_node, exported, tmp_path):
    checkpoint, onnx_model = exported
    depth_t, xyz_t, engine_t = serve_one_window(ros_node, {"checkpoint": str(checkpoint)}, tmp_path)
    depth_o, xyz_o, engine_o = serve_one_window(
        ros_node, {"backend": "onnxruntime", "onnx_model": str(onnx_model), "onnx_providers": ["CPUExecutionProvider"]}, tmp_path)
    assert engine_t["backend"] == "torch" and engine_o["backend"] == "onnxruntime"
    assert engine_o["onnx_provider"] == "CPUExecutionProvider" and "onnxruntime CPUExecutionProvider" in engine_o["device"]
    valid = np.isfinite(depth_t)
    assert valid.mean() > 0.5 and np.array_equal(valid, np.isfinite(depth_o))  # the same pixels filtered
    assert np.abs(depth_o[valid] - depth_t[valid]).max() / depth_t[valid].max() < 1e-4
    finite = np.isfinite(xyz_t).all(axis=-1)
    assert np.array_equal(finite, np.isfinite(xyz_o).all(axis=-1))
    assert np.abs(xyz_o[finite] - xyz_t[finite]).max() / np.abs(xyz_t[finite]).max() < 1e-4


def test_an_export_that_does_not_serve_the_window_size_is_refused_at_start_up(exported, tmp_path):
    _, onnx_model = exported
    proc = NodeProcess(DOMAIN_ID, {**PARAMS, "window_size": 3, "backend": "onnxruntime", "onnx_model": str(onnx_model)}, tmp_path)
    code = proc.wait_exit(timeout=120)
    output = proc.output()
    proc.stop()
    fatal = [line for line in output.splitlines() if "[FATAL]" in line]
    assert code == 1 and len(fatal) == 1 and "Traceback" not in output, output
    assert "serves windows of 1,2 frame(s) at 224x168, not 3" in fatal[0]
    assert "moe3d-export --frames 1-3 --image-size 224 168" in fatal[0]
