"""What a synthetic sequence looks like: image size, field of view, scene contents, camera motion."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


# "plausible": everything rests on the floor, on another object or (shelves) on a wall, sizes by
# object class, cameras at a robot's heights with little pitch and roll, moving as a robot moves.
# "floating": the earlier world: a quarter of the solids and the shelves float at random heights.
WORLDS = ("plausible", "floating")
_CAMERA_HEIGHTS = {"plausible": (0.3, 1.8), "floating": (0.9, 1.8)}  # 0.3-0.9 m: ground robots


@dataclass(frozen=True)
class SyntheticConfig:
    """Image size, field of view and the ranges that scenes and camera paths are drawn from.

    Lengths are metres; `(lo, hi)` pairs are uniform ranges, inclusive for integer counts.
    """

    height: int = 168
    width: int = 224
    fov_x_deg: float = 70.0
    room_size: tuple[float, float] = (3.5, 8.0)  # each horizontal side
    room_height: tuple[float, float] = (2.4, 3.5)
    num_objects: tuple[int, int] = (4, 9)  # boxes, spheres and cylinders
    num_thin: tuple[int, int] = (1, 3)  # poles and slabs
    thin_width: tuple[float, float] = (0.015, 0.05)  # about 1-4 px at 2-3 m with the default camera
    frame_spacing: tuple[float, float] = (0.1, 0.4)  # distance between consecutive frames
    camera_height: tuple[float, float] | None = None  # None: the world's range (_CAMERA_HEIGHTS)
    camera_clearance: float = 0.3  # from every object's bounding box
    wall_margin: float = 0.5  # from every wall, floor and ceiling
    texture_style: str = "natural"  # "natural" (rooms) or "hard" (two-colour patterns; see textures.TEXTURE_STYLES)
    world: str = "plausible"  # how objects and cameras are placed (WORLDS)

    def __post_init__(self) -> None:
        if self.world not in WORLDS:
            raise ValueError(f"synthetic world {self.world!r}: choose from {WORLDS}")

    @property
    def camera_heights(self) -> tuple[float, float]:
        """Range of camera heights above the floor: `camera_height`, else the world's own."""
        return self.camera_height or _CAMERA_HEIGHTS[self.world]


def default_intrinsics(config: SyntheticConfig = SyntheticConfig()) -> np.ndarray:
    """Square-pixel pinhole K for `config`; the principal point is the image centre, ((W-1)/2, (H-1)/2)."""
    focal = (config.width / 2.0) / math.tan(math.radians(config.fov_x_deg) / 2.0)
    return np.array(
        [[focal, 0.0, (config.width - 1) / 2.0], [0.0, focal, (config.height - 1) / 2.0], [0.0, 0.0, 1.0]]
    )
