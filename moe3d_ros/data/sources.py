"""Lazy multi-view RGB-D sequences: poses and intrinsics up front, pixels only when asked for.

A dataset such as ScanNet holds millions of frames, so readers return a `SequenceSource` that
knows every frame's camera (cheap text files) and reads images and depth only for the frames a
training window or an evaluation asks for (`load`).

Conventions are those of `RGBDSequence`: OpenCV / ROS optical axes, camera-to-world poses,
intrinsics of the image as loaded (integer pixel coordinates at pixel centres), depth in metres
that is 0 wherever it is invalid. All frames of one source share one image size, because
`load` returns an `RGBDSequence`, which stacks them.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from .sequence import RGBDSequence

__all__ = [
    "DatasetError",
    "FileSequenceSource",
    "InMemorySource",
    "SequenceSource",
    "read_color",
    "read_depth_png",
    "read_number_rows",
    "require_file",
]

Frame = tuple[np.ndarray, np.ndarray, np.ndarray]  # image [H, W, 3] uint8, depth [H, W] float32, valid [H, W] bool


class DatasetError(ValueError):
    """A dataset file is missing or does not hold what its format promises; the message names the file."""


class SequenceSource(ABC):
    """One sequence of N frames whose cameras are known and whose pixels are read on demand.

    `cam_to_world` [N, 4, 4] and `intrinsics` [N, 3, 3] are float64 and describe the images at
    the size `image_hw` reports (the size `load` returns).
    """

    def __init__(self, name: str, cam_to_world: np.ndarray, intrinsics: np.ndarray) -> None:
        cam_to_world = np.asarray(cam_to_world, dtype=np.float64)
        intrinsics = np.asarray(intrinsics, dtype=np.float64)
        frames = cam_to_world.shape[0] if cam_to_world.ndim == 3 else -1
        if cam_to_world.shape != (frames, 4, 4) or intrinsics.shape != (frames, 3, 3) or frames < 1:
            raise ValueError(
                f"sequence {name!r}: expected cam_to_world [N, 4, 4] and intrinsics [N, 3, 3] with N >= 1, "
                f"got {cam_to_world.shape} and {intrinsics.shape}"
            )
        self.name = name
        self.cam_to_world = cam_to_world
        self.intrinsics = intrinsics

    def __len__(self) -> int:
        return self.cam_to_world.shape[0]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {len(self)} frames)"

    def image_hw(self, index: int) -> tuple[int, int]:
        """(height, width) of frame `index` as `load` returns it (one size for the whole source)."""
        self._check_index(index)
        return self._image_hw()

    def load(self, indices: Sequence[int] | np.ndarray) -> RGBDSequence:
        """The frames at `indices`, in that order, reading nothing else."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size == 0:
            raise ValueError(f"sequence {self.name!r}: no frame indices to load")
        for index in idx:
            self._check_index(int(index))
        images, depth, valid = (np.stack(parts) for parts in zip(*(self._read_frame(int(i)) for i in idx)))
        return RGBDSequence(self.name, images, depth, valid, self.intrinsics[idx].copy(), self.cam_to_world[idx].copy())

    def _check_index(self, index: int) -> None:
        if not 0 <= index < len(self):
            raise IndexError(f"sequence {self.name!r}: frame {index} out of range [0, {len(self)})")

    @abstractmethod
    def _image_hw(self) -> tuple[int, int]:
        """The size shared by all frames."""

    @abstractmethod
    def _read_frame(self, index: int) -> Frame:
        """Image, depth (0 where invalid) and validity of one frame."""


class InMemorySource(SequenceSource):
    """An `RGBDSequence` already in memory (synthetic data, tests, small captures)."""

    def __init__(self, seq: RGBDSequence) -> None:
        super().__init__(seq.name, seq.cam_to_world, seq.intrinsics)
        self.sequence = seq

    def _image_hw(self) -> tuple[int, int]:
        return self.sequence.depth.shape[1], self.sequence.depth.shape[2]

    def _read_frame(self, index: int) -> Frame:
        seq = self.sequence
        return seq.images[index], seq.depth[index], seq.valid[index]


class FileSequenceSource(SequenceSource):
    """Frames stored as one colour image and one 16-bit depth PNG each (every reader's common case).

    Depth in metres is `raw / depth_scale`; a pixel is valid where `raw` is neither 0 nor
    `invalid_depth`, or, when `valid_paths` are given, where that 8-bit mask is nonzero. The
    depth image defines the frame size. A colour image of another size is an error unless
    `resize_color` is set (ScanNet), in which case it is resized to the depth size with area
    averaging; the intrinsics must then already describe the depth image.
    """

    def __init__(
        self,
        name: str,
        color_paths: Sequence[Path],
        depth_paths: Sequence[Path],
        cam_to_world: np.ndarray,
        intrinsics: np.ndarray,
        depth_scale: float,
        *,
        valid_paths: Sequence[Path] | None = None,
        invalid_depth: int | None = None,
        resize_color: bool = False,
        image_hw: tuple[int, int] | None = None,
    ) -> None:
        super().__init__(name, cam_to_world, intrinsics)
        masks = len(self) if valid_paths is None else len(valid_paths)
        if len({len(color_paths), len(depth_paths), masks, len(self)}) != 1:
            raise ValueError(f"sequence {name!r}: colour, depth, valid and pose lists differ in length")
        if not depth_scale > 0:
            raise ValueError(f"sequence {name!r}: depth_scale must be positive, got {depth_scale}")
        self.color_paths = [Path(p) for p in color_paths]
        self.depth_paths = [Path(p) for p in depth_paths]
        self.valid_paths = None if valid_paths is None else [Path(p) for p in valid_paths]
        self.depth_scale = float(depth_scale)
        self.invalid_depth = invalid_depth
        self.resize_color = resize_color
        self._hw = image_hw

    def _image_hw(self) -> tuple[int, int]:
        """Probed from the first depth image once, so opening a large dataset reads no pixels."""
        if self._hw is None:
            height, width = read_depth_png(self.depth_paths[0]).shape
            self._hw = (height, width)
        return self._hw

    def _read_frame(self, index: int) -> Frame:
        hw = self._image_hw()
        depth_path = self.depth_paths[index]
        raw = read_depth_png(depth_path)
        if raw.shape != hw:
            found = f"{raw.shape[0]}x{raw.shape[1]}"
            raise DatasetError(f"{depth_path}: expected a {hw[0]}x{hw[1]} depth image like the sequence's first, got {found}")
        color_path = self.color_paths[index]
        image = read_color(color_path)
        if image.shape[:2] != hw:
            if not self.resize_color:
                raise DatasetError(
                    f"{color_path}: expected a {hw[0]}x{hw[1]} colour image matching {depth_path.name}, "
                    f"got {image.shape[0]}x{image.shape[1]}"
                )
            image = cv2.resize(image, (hw[1], hw[0]), interpolation=cv2.INTER_AREA)
        if self.valid_paths is not None:
            valid = _read_mask(self.valid_paths[index], hw)
        else:
            valid = raw > 0
            if self.invalid_depth is not None:
                valid &= raw != self.invalid_depth
        depth = np.where(valid, raw.astype(np.float32) / np.float32(self.depth_scale), np.float32(0.0))
        return image, depth, valid


def read_color(path: Path) -> np.ndarray:
    """An 8-bit colour image file (PNG, JPG, ...) -> [H, W, 3] uint8 RGB."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError(f"{path}: {_why_unread(path)}; expected an 8-bit colour image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_depth_png(path: Path) -> np.ndarray:
    """A single-channel 16-bit PNG -> [H, W] uint16 raw depth values."""
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise DatasetError(f"{path}: {_why_unread(path)}; expected a 16-bit depth PNG")
    if raw.dtype != np.uint16 or raw.ndim != 2:
        found = f"{1 if raw.ndim == 2 else raw.shape[2]} channel(s) of {raw.dtype}"
        raise DatasetError(f"{path}: expected a single-channel 16-bit depth PNG, got {found}")
    return raw


def _read_mask(path: Path, hw: tuple[int, int]) -> np.ndarray:
    """An 8-bit validity mask (nonzero = valid) of size `hw` -> bool."""
    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if mask is None:
        raise DatasetError(f"{path}: {_why_unread(path)}; expected an 8-bit validity mask")
    if mask.ndim != 2 or mask.shape != hw:
        raise DatasetError(f"{path}: expected a single-channel {hw[0]}x{hw[1]} validity mask, got shape {mask.shape}")
    return mask != 0


def _why_unread(path: Path) -> str:
    """Why OpenCV returned no image: the file is absent or not a decodable image."""
    return "unreadable" if Path(path).exists() else "missing"


def require_file(path: Path, what: str) -> Path:
    """`path` if it is a file, else a DatasetError saying what was expected there."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: missing; expected {what}")
    return path


def read_number_rows(path: Path, columns: int, what: str) -> np.ndarray:
    """A text file of whitespace-separated numbers, `columns` per non-empty line -> [rows, columns] float64.

    'nan' and 'inf' parse (datasets mark invalid poses with them); anything else that is not a
    number, or a wrong count on a line, is a DatasetError naming the file and line.
    """
    rows = []
    for number, line in enumerate(require_file(path, what).read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        try:
            values = [float(field) for field in fields]
        except ValueError:
            values = []
        if len(values) != columns:
            raise DatasetError(f"{path} line {number}: expected {columns} numbers ({what}), got {line.strip()!r}")
        rows.append(values)
    if not rows:
        raise DatasetError(f"{path}: empty; expected {what}")
    return np.asarray(rows, dtype=np.float64)
