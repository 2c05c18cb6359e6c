"""What a CameraInfo says about the image the model gets: its pinhole intrinsics and, for a
distorted raw image, the rectification that makes it pinhole. No rclpy.

ROS cameras publish one CameraInfo for `image_raw` and `image_rect` alike (K and D of the raw
image, R and P of the rectified one). The model needs a pinhole image:
- a rectified image (`image_rect*`, or any image whose D is zero) is used as it is, with P's 3x3
  (K when P is unset);
- a raw image with a non-zero D is rectified here with OpenCV to P (plumb_bob and
  rational_polynomial through cv2.initUndistortRectifyMap, equidistant through cv2.fisheye), as
  image_proc would; any other distortion model is refused with the topic to use instead.
Everything the node publishes from such a frame then describes the rectified image.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .checks import Rejected, check_intrinsics

RADIAL_TANGENTIAL = ("plumb_bob", "rational_polynomial")
FISHEYE = ("equidistant",)


@dataclass(frozen=True)
class Rectification:
    """Remap tables from the raw image to the rectified one (float32 source coordinates)."""

    map_u: np.ndarray
    map_v: np.ndarray

    def apply(self, image: np.ndarray) -> np.ndarray:
        return cv2.remap(image, self.map_u, self.map_v, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


@dataclass(frozen=True)
class CameraModel:
    """The pinhole camera of the image the model gets (after `rectification`, when there is one)."""

    k: np.ndarray  # 3x3
    size: tuple[int, int]  # (height, width)
    rectification: Rectification | None = None

    @property
    def p(self) -> np.ndarray:
        """3x4 projection of the image the node's outputs describe."""
        return np.hstack([self.k, np.zeros((3, 1))])


def is_rectified_topic(topic: str) -> bool:
    """image_proc's names: image_rect, image_rect_color, image_rect/compressed, ..."""
    parts = [p for p in topic.split("/") if p and p != "compressed"]
    return bool(parts) and parts[-1].startswith("image_rect")


def camera_model(k: np.ndarray, d: np.ndarray, r: np.ndarray, p: np.ndarray, distortion_model: str, width: int, height: int,
                 rectified: bool) -> CameraModel:
    """The model's camera for an image described by this CameraInfo; raises Rejected when the
    image cannot be made pinhole (an unknown distortion model with a non-zero D)."""
    k = np.asarray(k, dtype=np.float64).reshape(3, 3)
    check_intrinsics(k, width, height)
    d = np.asarray(d, dtype=np.float64).reshape(-1)
    p = np.asarray(p, dtype=np.float64).reshape(3, 4) if len(p) == 12 else np.zeros((3, 4))
    if not np.isfinite(d).all() or not np.isfinite(p).all():
        raise Rejected("camera_info", "CameraInfo D or P has non-finite entries")
    p3 = p[:, :3] if p[0, 0] > 0 and p[1, 1] > 0 else k
    if rectified or not np.any(d):
        check_intrinsics(p3, width, height)
        return CameraModel(p3.copy(), (height, width))
    r = np.asarray(r, dtype=np.float64).reshape(3, 3) if len(r) == 9 and np.any(r) else np.eye(3)
    if distortion_model in RADIAL_TANGENTIAL:
        map_u, map_v = cv2.initUndistortRectifyMap(k, d, r, p3, (width, height), cv2.CV_32FC1)
    elif distortion_model in FISHEYE:
        if d.size < 4:
            raise Rejected("camera_info", f"equidistant distortion needs 4 coefficients, got {d.size}")
        map_u, map_v = cv2.fisheye.initUndistortRectifyMap(k, d[:4], r, p3, (width, height), cv2.CV_32FC1)
    else:
        raise Rejected("camera_info", f"use the image_rect topic: distortion model {distortion_model[:32]!r} is not "
                                      f"rectified here (plumb_bob, rational_polynomial, equidistant are)")
    check_intrinsics(p3, width, height)
    return CameraModel(p3.copy(), (height, width), Rectification(map_u, map_v))
