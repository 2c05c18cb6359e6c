"""What the node knows of one camera: its health, stamp guard, CameraInfo and metric depth by
stamp. Plain state shared by the subscriptions, the worker and the diagnostics (no rclpy)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .health import CameraHealth
from .stamps import NS, StampedHistory, StampGuard

CAMERA_INFO_HISTORY = 64
DEPTH_HISTORY = 16  # metric depth images kept per camera for the scale


@dataclass
class CameraState:
    name: str
    image_topic: str
    health: CameraHealth
    stamps: StampGuard
    infos: StampedHistory  # stamp -> (K at the source image's resolution, (height, width))
    depths: StampedHistory | None = None  # stamp -> metric depth [m] registered to the image (scale.mode depth)
    image_hw: tuple[int, int] | None = None  # of the last accepted image
    last_published_ns: int = 0

    @classmethod
    def create(cls, name: str, image_topic: str, stale_timeout: float, max_stamp_jump: float,
               camera_info_tolerance: float, depth_gap: float | None) -> CameraState:
        """depth_gap: seconds a metric depth image serves a frame, or None when the camera has none."""
        depths = StampedHistory(DEPTH_HISTORY, int(depth_gap * NS)) if depth_gap is not None else None
        return cls(name, image_topic, CameraHealth(stale_timeout), StampGuard(max_stamp_jump),
                   StampedHistory(CAMERA_INFO_HISTORY, int(camera_info_tolerance * NS)), depths)

    def intrinsics_for(self, stamp_ns: int, size: tuple[int, int]) -> tuple[np.ndarray | None, str]:
        """K of the CameraInfo with the frame's stamp (or the newest older one within the
        tolerance) when it fits the image (height, width); else None, with the reason when a
        CameraInfo was there but did not fit: the model's prediction is used then."""
        info = self.infos.at(stamp_ns)
        if info is None:
            return None, ""
        k, info_size = info
        if info_size != size:
            return None, (f"CameraInfo is {info_size[1]}x{info_size[0]} but the image is {size[1]}x{size[0]}: "
                          f"using predicted intrinsics")
        return k, ""
