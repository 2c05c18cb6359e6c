"""The "moe3d sequence": one documented on-disk format for any multi-view RGB-D sequence.

Convert a dataset once into this format (or write your own captures in it) and every tool of
the package can read it. One sequence is one folder:

    <folder>/sequence.json      {"format": "moe3d_sequence", "version": 1, "depth_scale": 1000.0,
                                 "num_frames": N, "name": "kitchen_01"}
    <folder>/rgb/000000.png     frame 0's colour image, 8-bit RGB, PNG or JPG (.png, .jpg, .jpeg)
    <folder>/depth/000000.png   frame 0's depth, single-channel 16-bit PNG:
                                depth in metres = value / depth_scale; 0 = invalid
    <folder>/intrinsics.txt     N lines "fx fy cx cy" (one per frame), or 1 line shared by all frames
    <folder>/poses.txt          N lines of 16 numbers: the row-major 4x4 camera-to-world matrix
    <folder>/valid/000000.png   optional 8-bit masks (nonzero = valid); without them valid = depth > 0

Rules:
- Frames are numbered 0 .. N-1 with six digits; every frame has an image and a depth PNG (and a
  mask, when the `valid` folder exists). All frames share one image size; colour and depth have
  the same size and are registered (depth pixel (u, v) belongs to colour pixel (u, v)).
- Cameras use the OpenCV / ROS optical axes (x right, y down, z forward). Intrinsics describe
  the stored images with integer pixel coordinates at pixel centres (the CameraInfo
  convention: the centre of a W-pixel-wide image is at u = (W - 1) / 2); no skew, no distortion.
- Depth is z-depth (distance along the optical axis), not distance along the ray. With the
  default depth_scale 1000 the values are millimetres: 1 mm steps, at most 65.535 m.
- `depth_scale` defaults to 1000 and `name` to the folder's name when absent; blank lines in the
  text files are ignored.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from .sequence import RGBDSequence
from .sources import DatasetError, FileSequenceSource, SequenceSource, read_number_rows, require_file

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "write_sequence", "read_sequence", "is_sequence_folder"]

FORMAT_NAME = "moe3d_sequence"
FORMAT_VERSION = 1
_COLOR_SUFFIXES = (".png", ".jpg", ".jpeg")


def is_sequence_folder(folder: Path | str) -> bool:
    """Whether `folder` holds a moe3d sequence (has a sequence.json)."""
    return (Path(folder) / "sequence.json").is_file()


def write_sequence(seq: RGBDSequence, folder: Path | str, depth_scale: float = 1000.0) -> Path:
    """Write `seq` as a moe3d sequence into `folder` (created if needed) and return the folder.

    Images are stored losslessly (PNG). Depth is rounded to 1 / depth_scale metres; valid masks
    are written only when depth alone cannot carry validity (a valid depth that rounds to 0).
    """
    folder = Path(folder)
    limit = np.iinfo(np.uint16).max
    quantised = np.rint(np.where(seq.valid, seq.depth, 0.0).astype(np.float64) * depth_scale)
    if not np.isfinite(quantised).all() or quantised.min() < 0 or quantised.max() > limit:
        raise ValueError(
            f"sequence {seq.name!r}: valid depth must be finite and within [0, {limit / depth_scale:g}] m "
            f"at depth_scale {depth_scale:g}; use a smaller depth_scale for larger scenes"
        )
    if np.any(seq.intrinsics[:, 0, 1] != 0) or np.any(seq.intrinsics[:, 2] != [0.0, 0.0, 1.0]):
        raise ValueError(f"sequence {seq.name!r}: the format stores fx fy cx cy; skewed intrinsics cannot be written")
    raw = quantised.astype(np.uint16)
    write_masks = bool(np.any(seq.valid & (raw == 0)))
    subfolders = ("rgb", "depth", "valid") if write_masks else ("rgb", "depth")
    for sub in subfolders:
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for index in range(len(seq)):
        stem = f"{index:06d}.png"
        _imwrite(folder / "rgb" / stem, cv2.cvtColor(seq.images[index], cv2.COLOR_RGB2BGR))
        _imwrite(folder / "depth" / stem, raw[index])
        if write_masks:
            _imwrite(folder / "valid" / stem, seq.valid[index].astype(np.uint8) * 255)
    k = seq.intrinsics
    intrinsics = np.stack([k[:, 0, 0], k[:, 1, 1], k[:, 0, 2], k[:, 1, 2]], axis=1)
    (folder / "intrinsics.txt").write_text(_number_lines(intrinsics))
    (folder / "poses.txt").write_text(_number_lines(seq.cam_to_world.reshape(len(seq), 16)))
    meta = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "depth_scale": depth_scale,
        "num_frames": len(seq),
        "name": seq.name,
    }
    (folder / "sequence.json").write_text(json.dumps(meta, indent=2) + "\n")
    return folder


def read_sequence(folder: Path | str) -> SequenceSource:
    """Open the moe3d sequence in `folder`; reads the metadata and cameras, no pixels."""
    folder = Path(folder)
    meta_path = require_file(folder / "sequence.json", f'a moe3d sequence\'s JSON metadata ("format": "{FORMAT_NAME}")')
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as error:
        raise DatasetError(f"{meta_path}: not valid JSON ({error})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise DatasetError(f'{meta_path}: expected "format": "{FORMAT_NAME}"')
    if meta.get("version") != FORMAT_VERSION:
        raise DatasetError(f"{meta_path}: version {meta.get('version')!r} is not supported (expected {FORMAT_VERSION})")
    frames = meta.get("num_frames")
    depth_scale = meta.get("depth_scale", 1000.0)
    if not isinstance(frames, int) or isinstance(frames, bool) or frames < 1:
        raise DatasetError(f'{meta_path}: expected "num_frames" to be a positive integer, got {frames!r}')
    if not isinstance(depth_scale, (int, float)) or isinstance(depth_scale, bool) or not depth_scale > 0:
        raise DatasetError(f'{meta_path}: expected "depth_scale" to be a positive number, got {depth_scale!r}')

    poses_path = folder / "poses.txt"
    poses = read_number_rows(poses_path, 16, "a row-major 4x4 camera-to-world matrix per line")
    if len(poses) != frames:
        raise DatasetError(f"{poses_path}: expected {frames} poses (num_frames), found {len(poses)}")
    poses = poses.reshape(frames, 4, 4)
    bad = np.flatnonzero(np.abs(poses[:, 3] - [0.0, 0.0, 0.0, 1.0]).max(axis=1) > 1e-6)
    if bad.size:
        row = poses[bad[0], 3].tolist()
        raise DatasetError(f"{poses_path} pose {bad[0]}: last row must be 0 0 0 1 (row-major camera-to-world), got {row}")

    intrinsics_path = folder / "intrinsics.txt"
    values = read_number_rows(intrinsics_path, 4, "fx fy cx cy")
    if len(values) not in (1, frames):
        raise DatasetError(f"{intrinsics_path}: expected 1 or {frames} lines of fx fy cx cy, found {len(values)}")
    intrinsics = np.zeros((len(values), 3, 3))
    intrinsics[:, 0, 0], intrinsics[:, 1, 1], intrinsics[:, 0, 2], intrinsics[:, 1, 2] = values.T
    intrinsics[:, 2, 2] = 1.0

    stems = [f"{index:06d}" for index in range(frames)]
    colors = [_frame_file(folder / "rgb", stem, _COLOR_SUFFIXES, "8-bit colour image") for stem in stems]
    depths = [_frame_file(folder / "depth", stem, (".png",), "16-bit depth PNG") for stem in stems]
    valid = None
    if (folder / "valid").is_dir():
        valid = [_frame_file(folder / "valid", stem, (".png",), "8-bit validity mask") for stem in stems]
    return FileSequenceSource(
        str(meta.get("name", folder.name)),
        colors,
        depths,
        poses,
        np.repeat(intrinsics, frames // len(values), axis=0),
        float(depth_scale),
        valid_paths=valid,
    )


def _frame_file(directory: Path, stem: str, suffixes: tuple[str, ...], what: str) -> Path:
    """The first existing `directory/stem<suffix>`, else an error naming what is missing."""
    for suffix in suffixes:
        path = directory / (stem + suffix)
        if path.is_file():
            return path
    expected = f"frame {int(stem)}'s {what} ({' or '.join(suffixes)})"
    raise DatasetError(f"{directory / (stem + suffixes[0])}: missing; expected {expected}")


def _number_lines(rows: np.ndarray) -> str:
    """Rows of floats with 17 significant digits, so they read back bit-exactly."""
    return "".join(" ".join(f"{value:.17g}" for value in row) + "\n" for row in rows)


def _imwrite(path: Path, image: np.ndarray) -> None:
    if not cv2.imwrite(str(path), image):
        raise OSError(f"{path}: could not write the image")
