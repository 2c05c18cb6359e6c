"""numpy <-> sensor_msgs without cv_bridge or sensor_msgs_py.

apt's cv_bridge breaks under numpy 2, and sensor_msgs_py reads 2-D arrays transposed for
organised clouds, so messages are built here directly (the cloud's point layout is postprocess.CLOUD_DTYPE).
Messages with large data are created with check_fields=True where the distro has it (Iron and
later; `new_message`): their data setter then keeps the given array.array instead of copying it
again, as Humble's setter always does. `msg.data` is always filled from an
`array.array('B')` (a memcpy); assigning an ndarray would copy element by element.
"""
from __future__ import annotations

import array
import inspect
from typing import Any

import cv2
import numpy as np
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, PointField
from std_msgs.msg import Header

from ..intake.camera import CameraState
from ..intake.camera_model import CameraModel, camera_model
from ..intake.checks import ImageLimits, Rejected, check_raw_image, compressed_size, shorten
from ..outputs.postprocess import CLOUD_DTYPE
from ..outputs.scale import pose_matrix

DEFAULT_LIMITS = ImageLimits()

# encoding -> (channels, dtype); the colour order is handled in image_to_rgb
ENCODINGS = {
    "rgb8": (3, np.uint8),
    "bgr8": (3, np.uint8),
    "rgba8": (4, np.uint8),
    "bgra8": (4, np.uint8),
    "mono8": (1, np.uint8),
    "mono16": (1, np.uint16),
}


class ConversionError(Rejected):
    """A message that cannot be turned into an image; the text says what is wrong with it."""

    def __init__(self, message: str, reason: str = "data_length") -> None:
        super().__init__(reason, message)


def new_message(msg_type: type) -> Any:
    """`msg_type(check_fields=True)` on distros whose generated messages take it (Iron and
    later), else `msg_type()` (Humble's constructors accept field names only)."""
    if "check_fields" in inspect.signature(msg_type.__init__).parameters:
        return msg_type(check_fields=True)
    return msg_type()


def _bytes(data: np.ndarray) -> array.array:
    out = array.array("B")
    out.frombytes(np.ascontiguousarray(data).view(np.uint8).reshape(-1).data)
    return out


def check_image(msg: Image, limits: ImageLimits = DEFAULT_LIMITS) -> None:
    """O(1) checks of an Image before anything is allocated for it: encoding, declared size
    within limits, row step and data length."""
    if msg.encoding not in ENCODINGS:
        raise ConversionError(f"unsupported encoding {shorten(msg.encoding)!r} (supported: {', '.join(ENCODINGS)})", "encoding")
    channels, dtype = ENCODINGS[msg.encoding]
    check_raw_image(msg.encoding, msg.width, msg.height, msg.step, len(msg.data), channels, np.dtype(dtype).itemsize, limits)


def check_compressed(msg: CompressedImage, limits: ImageLimits = DEFAULT_LIMITS) -> tuple[int, int]:
    """(width, height) of a CompressedImage from its PNG/JPEG headers, checked against the limits
    and for truncation and chunk CRCs, before any pixel is decoded."""
    width, height = compressed_size(memoryview(msg.data).tobytes())
    limits.check(width, height)
    return width, height


def image_to_rgb(msg: Image, limits: ImageLimits = DEFAULT_LIMITS) -> np.ndarray:
    """Image in a supported encoding -> HxWx3 uint8 RGB (mono16 keeps its top 8 bits)."""
    check_image(msg, limits)
    channels, dtype = ENCODINGS[msg.encoding]
    height, width, step = msg.height, msg.width, msg.step
    itemsize = np.dtype(dtype).itemsize
    row_bytes = width * channels * itemsize
    raw = np.frombuffer(msg.data, dtype=np.uint8).reshape(height, step)[:, :row_bytes]
    if itemsize == 2:
        grey = raw.view(np.dtype(np.uint16).newbyteorder(">" if msg.is_bigendian else "<"))
        return cv2.cvtColor((grey >> 8).astype(np.uint8), cv2.COLOR_GRAY2RGB)
    pixels = raw.reshape(height, width, channels) if channels > 1 else raw
    # One pass from the message buffer to a new contiguous RGB array.
    conversion = {"bgr8": cv2.COLOR_BGR2RGB, "rgba8": cv2.COLOR_RGBA2RGB, "bgra8": cv2.COLOR_BGRA2RGB, "mono8": cv2.COLOR_GRAY2RGB}
    if msg.encoding in conversion:
        return cv2.cvtColor(np.ascontiguousarray(pixels), conversion[msg.encoding])
    return pixels.copy()


def compressed_to_rgb(msg: CompressedImage, limits: ImageLimits = DEFAULT_LIMITS) -> np.ndarray:
    """JPEG/PNG bytes -> HxWx3 uint8 RGB; headers are checked (check_compressed) before decoding."""
    width, height = check_compressed(msg, limits)
    decoded = cv2.imdecode(np.frombuffer(msg.data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if decoded is None:
        raise ConversionError(f"could not decode {len(msg.data)} bytes of compressed image (format {shorten(msg.format)!r})", "corrupt")
    if decoded.shape[:2] != (height, width):
        raise ConversionError(f"decoded {decoded.shape[1]}x{decoded.shape[0]} but the header says {width}x{height}", "corrupt")
    return cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)


def image_msg(pixels: np.ndarray, encoding: str, header: Header) -> Image:
    """Pixel array already in `encoding`'s layout (HxW or HxWxC) -> Image."""
    pixels = np.ascontiguousarray(pixels)
    msg = new_message(Image)  # with field checks on, an array.array is taken without a second copy
    msg.header = header
    msg.height, msg.width = int(pixels.shape[0]), int(pixels.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = int(pixels[0].nbytes)
    msg.data = _bytes(pixels)
    return msg


def rgb_to_image_msg(rgb: np.ndarray, encoding: str, header: Header) -> Image:
    """HxWx3 uint8 RGB -> Image in any supported encoding (mono ones get the grey level)."""
    if encoding not in ENCODINGS:
        raise ConversionError(f"unsupported encoding {encoding!r} (supported: {', '.join(ENCODINGS)})")
    if encoding in ("mono8", "mono16"):
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        return image_msg(grey.astype(np.uint16) * 257 if encoding == "mono16" else grey, encoding, header)
    pixels = rgb[..., ::-1] if encoding.startswith("bgr") else rgb
    if encoding.endswith("a8"):
        pixels = np.concatenate([pixels, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=2)
    return image_msg(pixels, encoding, header)


def depth_msg(depth: np.ndarray, header: Header) -> Image:
    """float32 depth [H, W] (NaN = invalid) -> 32FC1 Image."""
    return image_msg(np.ascontiguousarray(depth, dtype=np.float32), "32FC1", header)


DEPTH_ENCODINGS = {"16UC1": (np.uint16, 0.001), "mono16": (np.uint16, 0.001), "32FC1": (np.float32, 1.0)}


def metric_depth(msg: Image, limits: ImageLimits = DEFAULT_LIMITS) -> np.ndarray:
    """A metric depth Image (16UC1 millimetres or 32FC1 metres) -> float32 metres, 0 = invalid
    (0, NaN, inf and negative values are all invalid)."""
    if msg.encoding not in DEPTH_ENCODINGS:
        raise ConversionError(f"depth encoding {shorten(msg.encoding)!r} is not 16UC1 (mm) or 32FC1 (m)", "encoding")
    dtype, to_metres = DEPTH_ENCODINGS[msg.encoding]
    check_raw_image(msg.encoding, msg.width, msg.height, msg.step, len(msg.data), 1, np.dtype(dtype).itemsize, limits)
    row_bytes = msg.width * np.dtype(dtype).itemsize
    raw = np.frombuffer(msg.data, dtype=np.uint8).reshape(msg.height, msg.step)[:, :row_bytes]
    values = raw.view(np.dtype(dtype).newbyteorder(">" if msg.is_bigendian else "<")).astype(np.float32) * np.float32(to_metres)
    return np.where(np.isfinite(values) & (values > 0), values, np.float32(0.0))


def odometry_pose(msg) -> np.ndarray:
    """nav_msgs/Odometry -> 4x4 base-in-world (the odometry frame); rejects non-finite poses and
    quaternions that are not unit length."""
    p, q = msg.pose.pose.position, msg.pose.pose.orientation
    values = np.array([p.x, p.y, p.z, q.x, q.y, q.z, q.w], dtype=np.float64)
    if not np.isfinite(values).all() or not 0.99 < np.linalg.norm(values[3:]) < 1.01:
        raise ConversionError("odometry pose is not finite or its quaternion is not unit length", "scale_input")
    return pose_matrix(values[:3], values[3:] / np.linalg.norm(values[3:]))


def camera_info_msg(intrinsics: np.ndarray, width: int, height: int, header: Header) -> CameraInfo:
    """Pinhole CameraInfo for an undistorted image of width x height."""
    msg = CameraInfo()
    msg.header = header
    msg.width, msg.height = int(width), int(height)
    msg.distortion_model = "plumb_bob"
    msg.d = [0.0] * 5
    k = np.asarray(intrinsics, dtype=np.float64)
    msg.k = k.reshape(-1).tolist()
    msg.r = np.eye(3).reshape(-1).tolist()
    msg.p = np.hstack([k, np.zeros((3, 1))]).reshape(-1).tolist()
    return msg


def camera_model_of(msg: CameraInfo, camera: CameraState) -> CameraModel:
    """The pinhole camera of `camera`'s images from its CameraInfo (P for rectified images, the
    rectification for distorted raw ones: intake.camera_model); the last one is reused while the
    CameraInfo does not change. Raises Rejected when K is unset or implausible, or the image
    cannot be made pinhole."""
    key = b"".join(np.asarray(v, dtype=np.float64).tobytes() for v in (msg.k, msg.d, msg.r, msg.p))
    key += f"{msg.distortion_model}|{msg.width}|{msg.height}|{camera.rectified}".encode()
    if camera.last_info is not None and camera.last_info[0] == key:
        return camera.last_info[1]
    model = camera_model(msg.k, msg.d, msg.r, msg.p, msg.distortion_model, msg.width, msg.height, camera.rectified)
    camera.last_info = (key, model)
    return model


CLOUD_FIELDS = [
    PointField(name="x", offset=0, datatype=PointField.FLOAT32, count=1),
    PointField(name="y", offset=4, datatype=PointField.FLOAT32, count=1),
    PointField(name="z", offset=8, datatype=PointField.FLOAT32, count=1),
    PointField(name="rgb", offset=12, datatype=PointField.FLOAT32, count=1),
    PointField(name="confidence", offset=16, datatype=PointField.FLOAT32, count=1),
    PointField(name="expert", offset=20, datatype=PointField.UINT8, count=1),
]


def cloud_msg(records: np.ndarray, header: Header) -> PointCloud2:
    """CLOUD_DTYPE records, organised [H, W] or unorganised [N] -> PointCloud2."""
    if records.dtype != CLOUD_DTYPE:
        raise ValueError(f"cloud records must have CLOUD_DTYPE, got {records.dtype}")
    msg = new_message(PointCloud2)  # an array.array is then taken without a second copy
    msg.header = header
    msg.height, msg.width = (int(records.shape[0]), int(records.shape[1])) if records.ndim == 2 else (1, int(records.shape[0]))
    msg.fields = CLOUD_FIELDS
    msg.is_bigendian = False
    msg.point_step = CLOUD_DTYPE.itemsize
    msg.row_step = msg.point_step * msg.width
    msg.is_dense = bool(np.isfinite(records["z"]).all())
    msg.data = _bytes(records)
    return msg


def cloud_records(msg: PointCloud2) -> np.ndarray:
    """A PointCloud2 written by cloud_msg as a structured array [height, width]."""
    return np.frombuffer(msg.data, dtype=CLOUD_DTYPE).reshape(msg.height, msg.width)
