"""Checks on what cameras send, before anything is allocated or computed from it. No ROS here.

Every check raises `Rejected` with a short `reason` key (counted per camera in diagnostics) and a
message for the log. Strings that come from messages are shortened before they reach a log line
or a diagnostics value, so a hostile 100,000-character encoding cannot flood either.
"""
from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass

import numpy as np

MAX_TEXT = 64  # characters of a message-supplied string shown in logs and diagnostics
MAX_FRAME_ID = 256


class Rejected(ValueError):
    """An input message that must not be used; `reason` is the counter it goes to."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def shorten(text: str, limit: int = MAX_TEXT) -> str:
    """`text` cut to `limit` characters (with the original length said), printable only."""
    text = str(text)
    cut = text if len(text) <= limit else f"{text[:limit]}...({len(text)} chars)"
    return cut.encode("unicode_escape").decode("ascii")  # control characters shown, not sent to a terminal


@dataclass(frozen=True)
class ImageLimits:
    """What a camera image may be: larger or stranger images are rejected before decoding.

    The model resizes the long side to its input width, so a 1 x 20000 image would become a
    518 x 10 million tensor: the aspect ratio is bounded as well as the pixel count.
    """

    max_pixels: int = 50_000_000  # 8K UHD is 33 MP
    max_side: int = 16384
    max_aspect: float = 8.0  # long side / short side; 32:9 panoramas are 3.6

    def check(self, width: int, height: int) -> None:
        if width <= 0 or height <= 0:
            raise Rejected("size", f"zero-sized image ({width}x{height})")
        if width * height > self.max_pixels or max(width, height) > self.max_side:
            raise Rejected("size", f"image of {width}x{height} exceeds the limits ({self.max_side} px a side, "
                                   f"{self.max_pixels / 1e6:.0f} MP)")
        if max(width, height) / min(width, height) > self.max_aspect:
            raise Rejected("size", f"image of {width}x{height} has an aspect ratio above {self.max_aspect:g}")


def check_frame_id(frame_id: str) -> None:
    """A frame_id every output can carry: non-empty, bounded, printable ASCII without spaces."""
    if not frame_id:
        raise Rejected("frame_id", "empty frame_id (outputs must name the camera's optical frame)")
    if len(frame_id) > MAX_FRAME_ID:
        raise Rejected("frame_id", f"frame_id of {len(frame_id)} characters (at most {MAX_FRAME_ID})")
    if not all(33 <= ord(ch) < 127 for ch in frame_id):
        raise Rejected("frame_id", f"frame_id {shorten(frame_id)!r} has characters other than printable ASCII")


def check_raw_image(encoding: str, width: int, height: int, step: int, data_length: int,
                    channels: int, itemsize: int, limits: ImageLimits) -> None:
    """Declared size, row step and data length of an uncompressed image agree, within limits."""
    limits.check(width, height)
    row_bytes = width * channels * itemsize
    if step < row_bytes or step > 2 * row_bytes + 64:
        raise Rejected("data_length", f"step {step} does not fit width {width} of {shorten(encoding)} ({row_bytes} bytes a row)")
    if data_length != step * height:
        raise Rejected("data_length", f"data has {data_length} bytes, expected step x height = {step} x {height} = {step * height}")


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _png_size(data: bytes) -> tuple[int, int]:
    """Width and height from IHDR, after checking every chunk's length and CRC up to IEND (a
    truncated or corrupted PNG is rejected here, before libpng prints its complaints)."""
    pos = len(_PNG_SIGNATURE)
    size = None
    while pos + 12 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        end = pos + 12 + length
        if end > len(data):
            break
        if zlib.crc32(data[pos + 4:pos + 8 + length]) != struct.unpack(">I", data[end - 4:end])[0]:
            raise Rejected("corrupt", f"PNG chunk {kind!r} has a wrong CRC")
        if kind == b"IHDR":
            size = struct.unpack(">II", data[pos + 8:pos + 16])
        if kind == b"IEND":
            if size is None:
                raise Rejected("corrupt", "PNG without IHDR")
            return size
        pos = end
    raise Rejected("corrupt", "PNG is truncated (no IEND chunk)")


def _jpeg_size(data: bytes) -> tuple[int, int]:
    """Width and height from the first start-of-frame marker; the stream must end with EOI."""
    if not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        raise Rejected("corrupt", "JPEG is truncated (no end-of-image marker)")
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise Rejected("corrupt", f"JPEG marker expected at byte {pos}")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
        if marker in _JPEG_SOF:
            if pos + 9 > len(data):
                break
            height, width = struct.unpack(">HH", data[pos + 5:pos + 9])
            return width, height
        if marker == 0xDA or length < 2:
            break
        pos += 2 + length
    raise Rejected("corrupt", "JPEG without a frame header before its scan data")


def compressed_size(data: bytes) -> tuple[int, int]:
    """(width, height) of a PNG or JPEG from its headers, without decoding any pixel."""
    if len(data) == 0:
        raise Rejected("corrupt", "compressed image has no data")
    if data.startswith(_PNG_SIGNATURE):
        return _png_size(data)
    if data.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    raise Rejected("format", f"compressed data is neither PNG nor JPEG (starts with {data[:4].hex()})")


def check_intrinsics(k: np.ndarray, width: int, height: int) -> None:
    """A pinhole K that unprojects to finite points: finite positive focal lengths of a sane
    magnitude and a finite principal point near the image."""
    k = np.asarray(k, dtype=np.float64).reshape(3, 3)
    fx, fy, cx, cy = k[0, 0], k[1, 1], k[0, 2], k[1, 2]
    if not np.isfinite(k).all():
        raise Rejected("camera_info", "CameraInfo K has non-finite entries")
    if not (fx > 0 and fy > 0):
        raise Rejected("camera_info", "CameraInfo has no focal length (K is unset or not positive)")
    side = max(width, height, 1)
    if not (1e-3 * side <= fx <= 1e3 * side and 1e-3 * side <= fy <= 1e3 * side):
        raise Rejected("camera_info", f"CameraInfo focal lengths {fx:.3g}, {fy:.3g} are implausible for a {width}x{height} image")
    if not (abs(cx) <= 10 * side and abs(cy) <= 10 * side):
        raise Rejected("camera_info", f"CameraInfo principal point ({cx:.3g}, {cy:.3g}) is far outside the image")
    if not (math.isclose(k[2, 2], 1.0) and k[2, 0] == 0 and k[2, 1] == 0):
        raise Rejected("camera_info", "CameraInfo K's last row is not (0, 0, 1)")
