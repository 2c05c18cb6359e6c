"""What the node knows of one camera: its health, stamp guard, CameraInfo and metric depth by
stamp. Plain state shared by the subscriptions, the worker and the diagnostics (no rclpy)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .camera_model import CameraModel
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
    infos: StampedHistory  # stamp -> CameraModel (pinhole K of the image the model gets, size, rectification)
    depths: StampedHistory | None = None  # stamp -> metric depth [m] registered to the image (scale.mode depth)
    image_hw: tuple[int, int] | None = None  # of the last accepted image
    last_published_ns: int = 0
    rectified: bool = False  # the images are rectified already (image_rect): P is their camera, D is not applied
    last_info: tuple[bytes, CameraModel] | None = None  # the last CameraInfo's content and its model (rectification maps are costly)

    @classmethod
    def create(cls, name: str, image_topic: str, stale_timeout: float, max_stamp_jump: float,
               camera_info_tolerance: float, depth_gap: float | None) -> CameraState:
        """depth_gap: seconds a metric depth image serves a frame, or None when the camera has none."""
        depths = StampedHistory(DEPTH_HISTORY, int(depth_gap * NS)) if depth_gap is not None else None
        return cls(name, image_topic, CameraHealth(stale_timeout), StampGuard(max_stamp_jump),
                   StampedHistory(CAMERA_INFO_HISTORY, int(camera_info_tolerance * NS)), depths)

    def model_for(self, stamp_ns: int, size: tuple[int, int]) -> tuple[CameraModel | None, str]:
        """The CameraModel of the CameraInfo with the frame's stamp (or the newest older one within
        the tolerance) when it fits the image (height, width); else None, with the reason when a
        CameraInfo was there but did not fit: the model's prediction is used then."""
        model = self.infos.at(stamp_ns)
        if model is None:
            return None, ""
        if model.size != size:
            return None, (f"CameraInfo is {model.size[1]}x{model.size[0]} but the image is {size[1]}x{size[0]}: "
                          f"using predicted intrinsics")
        return model, ""

    def intrinsics_for(self, stamp_ns: int, size: tuple[int, int]) -> tuple[np.ndarray | None, str]:
        """K of the image the model gets (model_for), or None with the reason."""
        model, mismatch = self.model_for(stamp_ns, size)
        return (model.k if model is not None else None), mismatch
