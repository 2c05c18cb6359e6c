"""MPI-Sintel depth (`read_sintel`, `sintel_sequences`), its training set used for evaluation:
images from MPI-Sintel-complete (or MPI-Sintel-training_images),
`training/<final|clean>/<scene>/frame_0001.png` (1024x436, frames numbered from 1), and depth and
cameras from MPI-Sintel-depth-training-20150305, `training/depth/<scene>/frame_0001.dpt` and
`training/camdata_left/<scene>/frame_0001.cam`. The given root may be either archive's
`training` folder's parent, or hold the two extractions below it (up to three levels down, e.g.
`<root>/MPI-Sintel-complete/training/final` and
`<root>/MPI-Sintel-depth-training-20150305/training/depth`); each of the two parts must be
found exactly once. `.dpt`: float32 tag 202021.25 ("PIEH"), int32 width, int32 height, then
width*height float32 depths, row-major, little-endian. `.cam`: float32 tag 202021.25, then the
3x3 intrinsic matrix M and the 3x4 world-to-camera extrinsic matrix N as float64, row-major
(a pixel is x = M N X). Depth is given raw, valid where finite and > 0; the 70 m cap of the
Sintel evaluation belongs to the metric and is not applied here.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...data.readers import _numbered_files
from ...data.sources import DatasetError, read_color, require_file
from .base import DepthDataset, DepthSample

SINTEL_TAG = 202021.25  # float32 "PIEH" opening every .dpt and .cam file
SINTEL_PASSES = ("final", "clean")


def _read_tagged(path: Path, what: str) -> bytes:
    """The bytes of a Sintel binary file after checking its float32 tag 202021.25."""
    data = require_file(path, what).read_bytes()
    if len(data) < 4:
        raise DatasetError(f"{path}: truncated ({len(data)} bytes); expected {what}")
    tag = float(np.frombuffer(data, "<f4", count=1)[0])
    if tag != SINTEL_TAG:
        raise DatasetError(f"{path}: wrong tag {tag!r}, expected {SINTEL_TAG} ('PIEH', little-endian); expected {what}")
    return data


def read_dpt(path: Path | str) -> np.ndarray:
    """A Sintel `.dpt` depth file -> [height, width] float32."""
    path = Path(path)
    what = "a Sintel .dpt file (tag, int32 width, int32 height, float32 depths)"
    data = _read_tagged(path, what)
    if len(data) < 12:
        raise DatasetError(f"{path}: truncated ({len(data)} bytes), no width and height; expected {what}")
    width, height = (int(value) for value in np.frombuffer(data, "<i4", count=2, offset=4))
    if width < 1 or height < 1:
        raise DatasetError(f"{path}: invalid size {width}x{height}; expected {what}")
    size = 12 + 4 * width * height
    if len(data) != size:
        state = "truncated" if len(data) < size else "too long"
        raise DatasetError(f"{path}: {state}: {len(data)} bytes, expected {size} for {width}x{height} float32 depths")
    return np.frombuffer(data, "<f4", offset=12).reshape(height, width).astype(np.float32)


def read_cam(path: Path | str) -> tuple[np.ndarray, np.ndarray]:
    """A Sintel `.cam` file -> (intrinsics M [3, 3], world-to-camera extrinsics N [3, 4]), float64."""
    path = Path(path)
    what = "a Sintel .cam file (tag, 3x3 and 3x4 float64 matrices)"
    data = _read_tagged(path, what)
    size = 4 + 8 * (9 + 12)
    if len(data) != size:
        state = "truncated" if len(data) < size else "too long"
        raise DatasetError(f"{path}: {state}: {len(data)} bytes, expected {size}; expected {what}")
    values = np.frombuffer(data, "<f8", offset=4).astype(np.float64)
    intrinsics, extrinsics = values[:9].reshape(3, 3), values[9:].reshape(3, 4)
    if not np.all(np.isfinite(values)) or not np.allclose(intrinsics[2], [0.0, 0.0, 1.0]):
        expected = "finite matrices and intrinsics with last row 0 0 1"
        raise DatasetError(f"{path}: expected {expected}, got M = {intrinsics.tolist()}")
    return intrinsics, extrinsics


@dataclass(frozen=True)
class SintelFrame:
    """The files of one Sintel frame; `number` is the one in the file names (from 1)."""

    scene: str
    number: int
    image: Path
    depth: Path
    cam: Path


class SintelDataset(DepthDataset):
    """Sintel frames, in scene and frame order (see the module doc)."""

    def __init__(self, name: str, frames: list[SintelFrame]) -> None:
        super().__init__(name, [f"sintel/{frame.scene}/frame_{frame.number:04d}" for frame in frames])
        self.frames = frames

    def _read(self, index: int) -> DepthSample:
        frame = self.frames[index]
        image = read_color(frame.image)
        depth = read_dpt(frame.depth)
        if image.shape[:2] != depth.shape:
            sizes = f"{image.shape[1]}x{image.shape[0]} vs {depth.shape[1]}x{depth.shape[0]}"
            raise DatasetError(f"{frame.image}: expected the size of its depth {frame.depth}, got {sizes}")
        intrinsics, world_to_camera = read_cam(frame.cam)
        cam_to_world = np.linalg.inv(np.vstack([world_to_camera, [0.0, 0.0, 0.0, 1.0]]))
        valid = np.isfinite(depth) & (depth > 0)
        name = self.sample_names[index]
        return DepthSample(name, image, depth, valid, intrinsics, frame.scene, frame.number, cam_to_world)


def _find_training_dir(root: Path, part: str, archive: str) -> Path:
    """The one `training` folder at or up to three levels below `root` that holds `part/`."""
    candidates = [root] if root.name == "training" else []
    for pattern in ("training", "*/training", "*/*/training", "*/*/*/training"):
        candidates += sorted(root.glob(pattern))
    found = [path for path in candidates if (path / part).is_dir()]
    if not found:
        raise DatasetError(f"{root}: no training/{part} folder within 3 levels; expected {archive} extracted there")
    if len(found) > 1:
        listing = ", ".join(str(path / part) for path in found)
        raise DatasetError(f"{root}: several training/{part} folders ({listing}); pass a root holding one")
    return found[0]


def read_sintel(root: Path | str, pass_: str = "final") -> SintelDataset:
    """Every Sintel training frame with depth, images of render pass `pass_` ("final" or "clean")."""
    if pass_ not in SINTEL_PASSES:
        raise ValueError(f"pass_ must be one of {SINTEL_PASSES}, got {pass_!r}")
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: missing; expected a folder holding the Sintel images and depth")
    images = _find_training_dir(root, pass_, f"MPI-Sintel-complete (training/{pass_}/<scene>/frame_0001.png)")
    depth_archive = "MPI-Sintel-depth-training-20150305 (training/depth/<scene>/frame_0001.dpt)"
    training = _find_training_dir(root, "depth", depth_archive)
    frames = []
    scenes = sorted(path for path in (images / pass_).iterdir() if path.is_dir())
    if not scenes:
        raise DatasetError(f"{images / pass_}: no scene folders; expected {images / pass_}/<scene>/frame_0001.png")
    for scene_dir in scenes:
        scene = scene_dir.name
        for number, image in _numbered_files(scene_dir, r"frame_(\d+)\.png", "Sintel frames frame_0001.png, ..."):
            stem = image.name[: -len(".png")]
            depth = require_file(training / "depth" / scene / f"{stem}.dpt", f"the Sintel depth of {image}")
            cam = require_file(training / "camdata_left" / scene / f"{stem}.cam", f"the Sintel camera of {image}")
            frames.append(SintelFrame(scene, number, image, depth, cam))
    return SintelDataset(f"sintel/{pass_}", frames)


def sintel_sequences(root: Path | str, pass_: str = "final") -> dict[str, SintelDataset]:
    """`read_sintel` split by scene: scene name -> its frames in order, e.g. to form video windows."""
    dataset = read_sintel(root, pass_)
    by_scene: dict[str, list[SintelFrame]] = {}
    for frame in dataset.frames:
        by_scene.setdefault(frame.scene, []).append(frame)
    return {scene: SintelDataset(f"{dataset.name}/{scene}", frames) for scene, frames in by_scene.items()}
