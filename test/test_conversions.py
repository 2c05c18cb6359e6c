"""Message conversions without a ROS graph: images in every encoding, compressed images,
CameraInfo, and the PointCloud2 layout read back with numpy."""
from __future__ import annotations

import array
import importlib.util

import cv2
import numpy as np
import pytest

from moe3d_ros.intake.camera import CameraState

pytest.importorskip("sensor_msgs.msg", reason="sensor_msgs (ROS 2 or the ros-jazzy-sensor-msgs wheel) is not installed")
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from moe3d_ros.intake.checks import Rejected  # noqa: E402
from moe3d_ros.outputs.postprocess import CLOUD_DTYPE  # noqa: E402
from moe3d_ros.ros.conversions import (  # noqa: E402
    ENCODINGS,
    camera_model_of,
    new_message,
    camera_info_msg,
    cloud_msg,
    cloud_records,
    compressed_to_rgb,
    depth_msg,
    image_msg,
    image_to_rgb,
    rgb_to_image_msg,
)

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8)


def header() -> Header:
    h = Header(frame_id="cam_optical_frame")
    h.stamp.sec, h.stamp.nanosec = 12, 345
    return h


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_every_encoding_round_trips(encoding):
    msg = rgb_to_image_msg(RGB, encoding, header())
    assert isinstance(msg.data, array.array) and msg.encoding == encoding
    back = image_to_rgb(msg)
    assert back.shape == RGB.shape and back.dtype == np.uint8
    if encoding.startswith("mono"):
        grey = cv2.cvtColor(RGB, cv2.COLOR_RGB2GRAY)
        np.testing.assert_array_equal(back, np.repeat(grey[..., None], 3, axis=2))
    else:
        np.testing.assert_array_equal(back, RGB)


def test_padded_rows_and_big_endian_mono16():
    grey16 = RNG.integers(0, 65536, (4, 3), dtype=np.uint16)
    msg = Image(height=4, width=3, encoding="mono16", is_bigendian=1, step=8)  # 2 bytes of row padding
    rows = np.zeros((4, 8), np.uint8)
    rows[:, :6] = grey16.astype(">u2").view(np.uint8).reshape(4, 6)
    msg.data = array.array("B", rows.tobytes())
    back = image_to_rgb(msg)
    np.testing.assert_array_equal(back[..., 0], (grey16 >> 8).astype(np.uint8))


@pytest.mark.parametrize(
    "fields, message",
    [
        (dict(encoding="yuv422"), "unsupported encoding"),
        (dict(width=0, height=0, step=0, data=b""), "zero-sized"),
        (dict(data=b"\x00" * 10), "expected step x height"),
        (dict(step=5), "does not fit width"),
    ],
)
def test_malformed_images_are_clear_errors(fields, message):
    msg = rgb_to_image_msg(RGB, "rgb8", header())
    for key, value in fields.items():
        setattr(msg, key, array.array("B", value) if key == "data" else value)
    with pytest.raises(Rejected, match=message):
        image_to_rgb(msg)


def test_compressed_jpeg_and_png_decode_and_corrupt_bytes_fail():
    for ext in (".png", ".jpg"):
        ok, encoded = cv2.imencode(ext, cv2.cvtColor(RGB, cv2.COLOR_RGB2BGR))
        msg = CompressedImage(format=ext[1:], data=array.array("B", encoded.tobytes()))
        back = compressed_to_rgb(msg)
        assert back.shape == RGB.shape
        if ext == ".png":
            np.testing.assert_array_equal(back, RGB)
    with pytest.raises(Rejected, match="truncated"):
        compressed_to_rgb(CompressedImage(format="jpeg", data=array.array("B", b"\xff\xd8 not a jpeg")))
    with pytest.raises(Rejected, match="could not decode"):  # well-formed markers, no decodable scan
        compressed_to_rgb(CompressedImage(format="jpeg", data=array.array("B", b"\xff\xd8\xff\xc0\x00\x11\x08\x00\x10\x00\x10" + bytes(12) + b"\xff\xd9")))
    with pytest.raises(Rejected, match="no data"):
        compressed_to_rgb(CompressedImage(format="jpeg"))


def test_depth_is_32fc1_with_nan_kept():
    depth = RNG.uniform(0.5, 3, (4, 6)).astype(np.float32)
    depth[1, 2] = np.nan
    msg = depth_msg(depth, header())
    assert (msg.encoding, msg.step, msg.header.frame_id) == ("32FC1", 24, "cam_optical_frame")
    back = np.frombuffer(msg.data, np.float32).reshape(4, 6)
    np.testing.assert_array_equal(back, depth)


def test_camera_info_carries_intrinsics_and_projection():
    k = np.array([[300.0, 0, 160.5], [0, 310.0, 120.25], [0, 0, 1]])
    msg = camera_info_msg(k, 320, 240, header())
    camera = CameraState.create("cam", "/cam/image_raw", 1.0, 1.0, 0.1, None)
    model = camera_model_of(msg, camera)
    np.testing.assert_array_equal(model.k, k)
    assert model.rectification is None and camera_model_of(msg, camera) is model  # unchanged CameraInfo: reused
    np.testing.assert_array_equal(np.array(msg.p).reshape(3, 4)[:, :3], k)
    assert (msg.width, msg.height, msg.distortion_model) == (320, 240, "plumb_bob")
    msg.k = [0.0] * 9
    with pytest.raises(Rejected, match="no focal length"):
        camera_model_of(msg, camera)


def _cloud(shape):
    records = np.zeros(shape, dtype=CLOUD_DTYPE)
    for name in ("x", "y", "z"):
        records[name] = RNG.normal(size=shape)
    records["x"][(0,) * len(shape)] = np.nan
    colors = RNG.integers(0, 256, shape + (3,), dtype=np.uint32)
    records["rgb"] = (colors[..., 0] << 16) | (colors[..., 1] << 8) | colors[..., 2]
    records["confidence"] = RNG.uniform(1, 5, shape)
    records["expert"] = RNG.integers(0, 4, shape)
    return records, colors


def test_organised_cloud_layout_reads_back_with_numpy():
    cloud, colors = _cloud((3, 4))
    msg = cloud_msg(cloud, header())
    assert (msg.height, msg.width, msg.point_step, msg.row_step, msg.is_dense) == (3, 4, 24, 96, True)
    assert [(f.name, f.offset) for f in msg.fields][:4] == [("x", 0), ("y", 4), ("z", 8), ("rgb", 12)]
    raw = np.frombuffer(msg.data, np.uint8).reshape(3, 4, 24)
    xyz = raw[..., :12].copy().view(np.float32).reshape(3, 4, 3)
    np.testing.assert_array_equal(xyz, np.stack([cloud["x"], cloud["y"], cloud["z"]], axis=-1))
    rgb = raw[..., 12:16].copy().view(np.uint32).reshape(3, 4)
    np.testing.assert_array_equal((rgb >> 16) & 255, colors[..., 0])
    np.testing.assert_array_equal(rgb & 255, colors[..., 2])
    records = cloud_records(msg)
    np.testing.assert_array_equal(records["expert"], cloud["expert"])
    np.testing.assert_array_equal(records["confidence"], cloud["confidence"])


def test_unorganised_cloud_and_dense_flag():
    cloud, _ = _cloud((5,))
    cloud["z"][2] = np.nan
    msg = cloud_msg(cloud, header())
    assert (msg.height, msg.width, msg.is_dense) == (1, 5, False)
    np.testing.assert_array_equal(cloud_records(msg)["y"][0], cloud["y"])
    with pytest.raises(ValueError, match="CLOUD_DTYPE"):
        cloud_msg(np.zeros(3, np.float32), header())


@pytest.mark.skipif(importlib.util.find_spec("sensor_msgs_py") is None, reason="sensor_msgs_py not installed (needs a ROS install)")
def test_cross_check_with_sensor_msgs_py():
    from sensor_msgs_py import point_cloud2

    cloud, _ = _cloud((3, 4))
    points = point_cloud2.read_points(cloud_msg(cloud, header()), field_names=("x", "y", "z"), skip_nans=False)
    for name in ("x", "y", "z"):
        np.testing.assert_array_equal(np.asarray(points[name]).reshape(3, 4), cloud[name])


@pytest.mark.skipif(importlib.util.find_spec("cv_bridge") is None, reason="cv_bridge not installed (needs a ROS install)")
def test_cross_check_with_cv_bridge():
    from cv_bridge import CvBridge

    bridge = CvBridge()
    np.testing.assert_array_equal(bridge.imgmsg_to_cv2(image_msg(RGB, "rgb8", header())), RGB)
    depth = RNG.uniform(0.5, 3, (4, 6)).astype(np.float32)
    np.testing.assert_array_equal(bridge.imgmsg_to_cv2(depth_msg(depth, header())), depth)


class _HumbleMessage:
    """A message class as Humble generates it: keyword arguments must be field names."""

    __slots__ = ("_data",)

    def __init__(self, **kwargs):
        assert all("_" + key in self.__slots__ for key in kwargs), f"invalid arguments: {sorted(kwargs)}"


def test_messages_are_built_on_humble_and_on_later_distros():
    assert isinstance(new_message(_HumbleMessage), _HumbleMessage)  # Humble: no check_fields argument
    image = new_message(Image)  # Jazzy: with field checks
    image.data = array.array("B", b"\x01\x02")
    assert bytes(image.data) == b"\x01\x02"


def test_the_qos_event_callbacks_import_on_humble_and_on_later_distros(monkeypatch):
    import importlib
    import sys
    import types

    import moe3d_ros.ros.input_qos as input_qos
    from rclpy.event_handler import SubscriptionEventCallbacks

    assert input_qos.SubscriptionEventCallbacks is SubscriptionEventCallbacks  # Iron and later
    humble = types.ModuleType("rclpy.qos_event")
    humble.SubscriptionEventCallbacks = type("HumbleCallbacks", (), {})
    monkeypatch.setitem(sys.modules, "rclpy.event_handler", None)  # as on Humble: no such module
    monkeypatch.setitem(sys.modules, "rclpy.qos_event", humble)
    try:
        assert importlib.reload(input_qos).SubscriptionEventCallbacks is humble.SubscriptionEventCallbacks
    finally:
        monkeypatch.undo()
        importlib.reload(input_qos)
