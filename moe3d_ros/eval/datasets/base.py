"""What every evaluation reader gives: `DepthSample`s, listed up front, read when indexed.

Each reader checks the layout and lists the samples up front, then reads one sample's pixels
only when it is indexed (`dataset[i]`), so a loop over a large set holds one image at a time.
A sample is a `DepthSample`: RGB image, ground-truth depth in metres exactly as the dataset
stores it (not zeroed outside `valid`), and `valid`, the pixels an evaluation scores. A missing
or malformed file raises a `DatasetError` naming the file and what was expected.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Iterator

import numpy as np


@dataclass(frozen=True)
class DepthSample:
    """One evaluation image with its ground truth.

    `depth` is as the dataset stores it, in metres; `valid` marks the pixels a metric scores.
    `scene` and `frame` (the number in the file name) place Sintel frames in their sequence;
    `cam_to_world` is the OpenCV camera-to-world pose where the dataset has one.
    """

    name: str
    image: np.ndarray  # [H, W, 3] uint8 RGB
    depth: np.ndarray  # [H, W] float32 metres
    valid: np.ndarray  # [H, W] bool
    intrinsics: np.ndarray | None = None  # [3, 3] float64
    scene: str | None = None
    frame: int | None = None
    cam_to_world: np.ndarray | None = None  # [4, 4] float64

    def __post_init__(self) -> None:
        height, width = self.depth.shape
        checks = {
            "image": (self.image, (height, width, 3), np.uint8),
            "depth": (self.depth, (height, width), np.float32),
            "valid": (self.valid, (height, width), np.bool_),
            "intrinsics": (self.intrinsics, (3, 3), np.float64),
            "cam_to_world": (self.cam_to_world, (4, 4), np.float64),
        }
        for field, (array, shape, dtype) in checks.items():
            if array is not None and (array.shape != shape or array.dtype != dtype):
                found = f"{array.dtype} {array.shape}"
                raise ValueError(f"sample {self.name!r}: {field} is {found}, expected {np.dtype(dtype)} {shape}")


class DepthDataset(ABC):
    """Samples listed up front and read one at a time when indexed."""

    def __init__(self, name: str, sample_names: list[str]) -> None:
        self.name = name
        self.sample_names = sample_names

    def __len__(self) -> int:
        return len(self.sample_names)

    def __getitem__(self, index: int) -> DepthSample:
        if not -len(self) <= index < len(self):
            raise IndexError(f"dataset {self.name!r}: sample {index} out of range [0, {len(self)})")
        return self._read(index % len(self))

    def __iter__(self) -> Iterator[DepthSample]:
        return (self._read(index) for index in range(len(self)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {len(self)} samples)"

    @abstractmethod
    def _read(self, index: int) -> DepthSample:
        """Sample `index` (0 <= index < len), read from disk."""
