"""The in-memory multi-view RGB-D sequence every data source produces."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class RGBDSequence:
    """S frames of one scene.

    Conventions: OpenCV / ROS optical camera axes (x right, y down, z forward); `cam_to_world`
    maps camera coordinates to world coordinates; intrinsics use integer pixel coordinates at
    pixel centres; depth is z-depth in metres (or scene units), meaningful where `valid`.
    """

    name: str
    images: np.ndarray  # [S, H, W, 3] uint8 RGB
    depth: np.ndarray  # [S, H, W] float32
    valid: np.ndarray  # [S, H, W] bool
    intrinsics: np.ndarray  # [S, 3, 3] float64
    cam_to_world: np.ndarray  # [S, 4, 4] float64

    def __post_init__(self) -> None:
        frames, height, width = self.depth.shape
        expected = {
            "images": (frames, height, width, 3),
            "valid": (frames, height, width),
            "intrinsics": (frames, 3, 3),
            "cam_to_world": (frames, 4, 4),
        }
        for name, shape in expected.items():
            if getattr(self, name).shape != shape:
                raise ValueError(f"sequence {self.name!r}: {name} has shape {getattr(self, name).shape}, expected {shape}")
        if self.images.dtype != np.uint8:
            raise ValueError(f"sequence {self.name!r}: images must be uint8, got {self.images.dtype}")

    def __len__(self) -> int:
        return self.depth.shape[0]

    def select(self, indices: list[int] | np.ndarray) -> "RGBDSequence":
        """The frames at `indices`, in that order."""
        idx = np.asarray(indices)
        return RGBDSequence(
            self.name, self.images[idx], self.depth[idx], self.valid[idx], self.intrinsics[idx], self.cam_to_world[idx]
        )
