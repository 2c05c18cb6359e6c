"""Readers for public RGB-D datasets, in the folder layouts they are published in.

Each reader reads the cameras of a sequence (text files) and returns a lazy `SequenceSource`;
pixels are read by `load`. Poses come out as OpenCV camera-to-world matrices, depth in metres
with 0 where invalid, intrinsics of the images as loaded. A missing or malformed file raises a
`DatasetError` naming the file and what was expected. Frames whose pose holds NaN or inf (how
NRGBD and ScanNet mark tracking failures) are skipped.

- 7-Scenes (`read_7scenes`): `<scene>/seq-XX/frame-000000.{color.png,depth.png,pose.txt}`,
  depth uint16 millimetres with 65535 = invalid, 640x480, fx = fy = 585, cx = 320, cy = 240.
  The Kinect depth camera is not registered to the colour camera in 7-Scenes; like the pi3 /
  VGGT evaluations we treat them as registered (depth pixel (u, v) = colour pixel (u, v)), so
  colour and depth edges can disagree by a few pixels.
- NRGBD / neural_rgbd_data (`read_nrgbd`): `<scene>/images/img<i>.png`, `<scene>/depth/depth<i>.png`
  (uint16 millimetres), `<scene>/poses.txt` (one 4x4 camera-to-world matrix per 4 lines, in the
  OpenGL camera convention x right, y up, z backward, converted here by flipping the camera's y
  and z axes), `<scene>/focal.txt` (one focal length). The principal point is (W/2, H/2) in
  integer pixel coordinates, the convention of the dataset's own ray generator.
- TUM RGB-D (`read_tum`): `<seq>/rgb.txt`, `<seq>/depth.txt` ("timestamp filename"),
  `<seq>/groundtruth.txt` ("timestamp tx ty tz qx qy qz qw", camera-to-world), '#' comments;
  depth uint16 with 5000 units per metre (the depth images are registered to colour). A frame
  is an rgb image; its depth is the depth image of nearest timestamp, and its pose is
  interpolated (linearly for the position, slerp for the rotation) between the two ground-truth
  samples around the rgb timestamp. Frames without a depth image or without a ground-truth
  sample within 0.02 s are dropped. Intrinsics by the sequence folder's name (freiburg1/2/3 or
  fr1/2/3), else the ROS default with a warning; lens distortion (fr1, fr2) is ignored, as the
  common evaluations do.
- ScanNet, as exported by its SensReader (`read_scannet`): `<scene>/color/<i>.jpg`,
  `<scene>/depth/<i>.png` (uint16 millimetres), `<scene>/pose/<i>.txt` (4x4 camera-to-world),
  `<scene>/intrinsic/intrinsic_depth.txt` (4x4). Colour (1296x968) and depth (640x480) differ in
  resolution; the colour image is resized to the depth resolution and the depth intrinsics are
  used for both (the usual practice; `intrinsic_color.txt` is not needed).
"""
from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
from scipy.spatial.transform import Rotation

from .generic import is_sequence_folder, read_sequence
from .sources import DatasetError, FileSequenceSource, SequenceSource, read_depth_png, read_number_rows, require_file

__all__ = ["SOURCE_KINDS", "open_sources", "read_7scenes", "read_nrgbd", "read_tum", "read_scannet", "pinhole"]

SEVEN_SCENES_INTRINSICS = (585.0, 585.0, 320.0, 240.0)
SEVEN_SCENES_INVALID_DEPTH = 65535
TUM_INTRINSICS = {
    "1": (517.3, 516.5, 318.6, 255.3),
    "2": (520.9, 521.0, 325.1, 249.7),
    "3": (535.4, 539.2, 320.1, 247.6),
}
TUM_DEFAULT_INTRINSICS = (525.0, 525.0, 319.5, 239.5)  # the ROS / OpenNI default
TUM_DEPTH_SCALE = 5000.0
TUM_MAX_TIME_DIFFERENCE = 0.02  # seconds
KINECT_HW = (480, 640)  # 7-Scenes and TUM image size, which their fixed intrinsics describe
OPENGL_TO_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])  # right-multiplied: flips the camera's y and z axes
_DEPTH_PER_IMAGE = "a 16-bit depth PNG (millimetres) for each colour image"
_POSE_MATRIX = "4 lines of 4 numbers: the camera-to-world matrix"


def pinhole(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """The 3x3 intrinsics matrix."""
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


# ----------------------------------------------------------------------------------------------
# 7-Scenes


def read_7scenes(scene_dir: Path | str, sequences: str | Iterable[int | str] | None = None) -> list[SequenceSource]:
    """The sequences of one 7-Scenes scene (e.g. `.../7scenes/chess`).

    `sequences`: None for every `seq-XX` folder, "train" or "test" for the scene's
    TrainSplit.txt / TestSplit.txt, or sequence numbers / folder names (3 or "seq-03").
    """
    scene_dir = Path(scene_dir)
    return [_read_7scenes_sequence(scene_dir / name) for name in _seven_scenes_names(scene_dir, sequences)]


def _seven_scenes_names(scene_dir: Path, sequences: str | Iterable[int | str] | None) -> list[str]:
    if sequences is None:
        names = sorted(path.name for path in scene_dir.glob("seq-*") if path.is_dir())
        if not names:
            expected = "a 7-Scenes scene folder (with the seq-XX.zip archives extracted)"
            raise DatasetError(f"{scene_dir}: no seq-XX folders; expected {expected}")
        return names
    if sequences in ("train", "test"):
        split = require_file(scene_dir / f"{sequences.capitalize()}Split.txt", "lines like 'sequence1'")
        numbers = []
        for number, line in enumerate(split.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            match = re.fullmatch(r"\s*sequence(\d+)\s*", line)
            if match is None:
                raise DatasetError(f"{split} line {number}: expected 'sequence<N>', got {line.strip()!r}")
            numbers.append(int(match.group(1)))
        sequences = numbers
    items = [sequences] if isinstance(sequences, (int, str)) else list(sequences)
    return [f"seq-{item:02d}" if isinstance(item, int) else item for item in items]


def _read_7scenes_sequence(seq_dir: Path) -> SequenceSource:
    frames = _numbered_files(seq_dir, r"frame-(\d+)\.color\.png", "7-Scenes colour images frame-000000.color.png")
    colors, depths, poses = [], [], []
    for _, color in frames:
        stem = color.name[: -len(".color.png")]
        colors.append(color)
        depths.append(require_file(seq_dir / f"{stem}.depth.png", _DEPTH_PER_IMAGE))
        poses.append(_read_matrix4(seq_dir / f"{stem}.pose.txt", _POSE_MATRIX))
    k = pinhole(*SEVEN_SCENES_INTRINSICS)
    name = f"7scenes/{seq_dir.parent.name}/{seq_dir.name}"
    options = {"invalid_depth": SEVEN_SCENES_INVALID_DEPTH, "image_hw": KINECT_HW}
    return _source(name, seq_dir, colors, depths, np.stack(poses), k, 1000.0, **options)


# ----------------------------------------------------------------------------------------------
# NRGBD


def read_nrgbd(scene_dir: Path | str) -> SequenceSource:
    """One NRGBD scene (e.g. `.../neural_rgbd_data/kitchen`); OpenGL poses become OpenCV poses."""
    scene_dir = Path(scene_dir)
    images = _numbered_files(scene_dir / "images", r"img(\d+)\.png", "colour images img0.png, img1.png, ...")
    poses_path = scene_dir / "poses.txt"
    rows = read_number_rows(poses_path, 4, "4x4 camera-to-world matrices, 4 lines each")
    if len(rows) != 4 * len(images):
        expected = f"{4 * len(images)} lines (4 per image in images/)"
        raise DatasetError(f"{poses_path}: expected {expected}, found {len(rows)}")
    poses = rows.reshape(-1, 4, 4) @ OPENGL_TO_OPENCV
    focal_path = scene_dir / "focal.txt"
    focal = read_number_rows(focal_path, 1, "one focal length in pixels")
    if focal.shape != (1, 1) or not focal[0, 0] > 0:
        raise DatasetError(f"{focal_path}: expected one positive focal length, got {focal.ravel().tolist()}")
    colors, depths, frame_poses = [], [], []
    for number, color in images:
        if number >= len(poses):
            raise DatasetError(f"{color}: image number {number} has no pose in {poses_path} ({len(poses)} poses)")
        colors.append(color)
        depths.append(require_file(scene_dir / "depth" / f"depth{number}.png", _DEPTH_PER_IMAGE))
        frame_poses.append(poses[number])
    height, width = read_depth_png(depths[0]).shape  # the principal point needs the image size
    k = pinhole(focal[0, 0], focal[0, 0], width / 2.0, height / 2.0)
    poses = np.stack(frame_poses)
    return _source(f"nrgbd/{scene_dir.name}", scene_dir, colors, depths, poses, k, 1000.0, image_hw=(height, width))


# ----------------------------------------------------------------------------------------------
# TUM RGB-D


def read_tum(seq_dir: Path | str) -> SequenceSource:
    """One TUM RGB-D sequence (e.g. `.../rgbd_dataset_freiburg1_xyz`), associated by timestamp."""
    seq_dir = Path(seq_dir)
    rgb_times, rgb_files = _tum_table(seq_dir / "rgb.txt", "timestamp filename")
    rgb_times = rgb_times[:, 0]
    depth_times, depth_files = _tum_table(seq_dir / "depth.txt", "timestamp filename")
    depth_times = depth_times[:, 0]
    gt_path = seq_dir / "groundtruth.txt"
    gt, _ = _tum_table(gt_path, "timestamp tx ty tz qx qy qz qw")
    gt = gt[np.argsort(gt[:, 0], kind="stable")]
    if np.any(np.linalg.norm(gt[:, 4:], axis=1) == 0):
        raise DatasetError(f"{gt_path}: a quaternion qx qy qz qw is all zeros")

    depth_order = np.argsort(depth_times, kind="stable")
    depth_index = depth_order[_nearest(depth_times[depth_order], rgb_times)]
    lower, upper, weight, gap = _bracket(gt[:, 0], rgb_times)
    keep = (np.abs(depth_times[depth_index] - rgb_times) <= TUM_MAX_TIME_DIFFERENCE) & (gap <= TUM_MAX_TIME_DIFFERENCE)
    if not keep.any():
        within = f"within {TUM_MAX_TIME_DIFFERENCE} s"
        raise DatasetError(f"{seq_dir}: no rgb.txt entry has a depth.txt entry and a groundtruth.txt sample {within}")
    lower, upper, weight = lower[keep], upper[keep], weight[keep]
    start, end = Rotation.from_quat(gt[lower, 4:]), Rotation.from_quat(gt[upper, 4:])
    rotation = start * Rotation.from_rotvec((start.inv() * end).as_rotvec() * weight[:, None])
    poses = np.tile(np.eye(4), (len(lower), 1, 1))
    poses[:, :3, :3] = rotation.as_matrix()
    poses[:, :3, 3] = gt[lower, 1:4] + weight[:, None] * (gt[upper, 1:4] - gt[lower, 1:4])

    colors = [require_file(seq_dir / rgb_files[i], "an rgb image listed in rgb.txt") for i in np.flatnonzero(keep)]
    depths = [require_file(seq_dir / depth_files[i], "a depth image listed in depth.txt") for i in depth_index[keep]]
    k = pinhole(*_tum_intrinsics(seq_dir))
    name = f"tum/{seq_dir.resolve().name}"
    return _source(name, seq_dir, colors, depths, poses, k, TUM_DEPTH_SCALE, image_hw=KINECT_HW)


def _tum_table(path: Path, header: str) -> tuple[np.ndarray, list[str]]:
    """The non-comment lines of a TUM text file laid out as `header` -> (numbers [N, k], file names).

    Every field before a 'filename' field is a number; lines starting with '#' are comments.
    """
    names = header.split()
    numeric = names.index("filename") if "filename" in names else len(names)
    numbers, files = [], []
    for number, line in enumerate(require_file(path, f"lines '{header}'").read_text().splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        try:
            if len(fields) != len(names):
                raise ValueError
            numbers.append([float(field) for field in fields[:numeric]])
        except ValueError:
            raise DatasetError(f"{path} line {number}: expected '{header}', got {line.strip()!r}") from None
        files.extend(fields[numeric:])
    if not numbers:
        raise DatasetError(f"{path}: no entries; expected lines '{header}'")
    return np.asarray(numbers), files


def _nearest(sorted_times: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Index of the nearest entry of `sorted_times` for each query."""
    upper = np.clip(np.searchsorted(sorted_times, queries), 0, len(sorted_times) - 1)
    lower = np.clip(upper - 1, 0, None)
    return np.where(np.abs(sorted_times[lower] - queries) <= np.abs(sorted_times[upper] - queries), lower, upper)


def _bracket(sorted_times: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Samples around each query: (lower, upper, interpolation weight, distance to the nearer one).

    Outside the sampled range both indices are the end sample and the weight is 0.
    """
    upper = np.clip(np.searchsorted(sorted_times, queries), 0, len(sorted_times) - 1)
    lower = np.clip(upper - 1, 0, None)
    lower = np.where(sorted_times[upper] <= queries, upper, lower)  # exact hits and queries past the end
    upper = np.where(sorted_times[lower] >= queries, lower, upper)  # queries before the start
    span = sorted_times[upper] - sorted_times[lower]
    weight = np.divide(queries - sorted_times[lower], span, out=np.zeros_like(span), where=span > 0)
    gap = np.minimum(np.abs(queries - sorted_times[lower]), np.abs(sorted_times[upper] - queries))
    return lower, upper, weight, gap


def _tum_intrinsics(seq_dir: Path) -> tuple[float, float, float, float]:
    """The published calibration of the sensor named in the folder name (freiburg1 / fr1, ...)."""
    name = seq_dir.resolve().name
    match = re.search(r"(?:^|_)(?:freiburg|fr)([123])(?:_|$)", name)
    if match is None:
        default = f"the ROS default intrinsics {TUM_DEFAULT_INTRINSICS}"
        warnings.warn(f"{seq_dir}: the folder name names no freiburg1/2/3 sensor; using {default}", stacklevel=3)
        return TUM_DEFAULT_INTRINSICS
    return TUM_INTRINSICS[match.group(1)]


# ----------------------------------------------------------------------------------------------
# ScanNet


def read_scannet(scene_dir: Path | str) -> SequenceSource:
    """One ScanNet scene exported by SensReader (e.g. `.../scans/scene0000_00`), at depth resolution."""
    scene_dir = Path(scene_dir)
    frames = _numbered_files(scene_dir / "color", r"(\d+)\.jpg", "colour images 0.jpg, 1.jpg, ...")
    colors, depths, poses = [], [], []
    for number, color in frames:
        colors.append(color)
        depths.append(require_file(scene_dir / "depth" / f"{number}.png", _DEPTH_PER_IMAGE))
        poses.append(_read_matrix4(scene_dir / "pose" / f"{number}.txt", _POSE_MATRIX))
    k_path = scene_dir / "intrinsic" / "intrinsic_depth.txt"
    k = _read_matrix4(k_path, "the 4x4 depth camera intrinsics")[:3, :3]
    if not np.allclose(k[2], [0.0, 0.0, 1.0]) or not np.all(np.isfinite(k)):
        raise DatasetError(f"{k_path}: expected pinhole intrinsics with last row 0 0 1, got {k.tolist()}")
    poses = np.stack(poses)
    return _source(f"scannet/{scene_dir.name}", scene_dir, colors, depths, poses, k, 1000.0, resize_color=True)


# ----------------------------------------------------------------------------------------------
# Dispatch


def _has_seven_scenes_sequences(path: Path) -> bool:
    return any(child.is_dir() for child in path.glob("seq-*"))


def _is_nrgbd_scene(path: Path) -> bool:
    return (path / "poses.txt").is_file() and (path / "images").is_dir()


def _is_tum_sequence(path: Path) -> bool:
    return (path / "rgb.txt").is_file()


def _is_scannet_scene(path: Path) -> bool:
    return (path / "color").is_dir() and (path / "intrinsic").is_dir()


def _one(reader: Callable[[Path], SequenceSource]) -> Callable[[Path], list[SequenceSource]]:
    return lambda path: [reader(path)]


# kind -> (whether a folder is one unit of the dataset, read one unit, what a unit is)
_KINDS: dict[str, tuple[Callable[[Path], bool], Callable[[Path], list[SequenceSource]], str]] = {
    "moe3d": (is_sequence_folder, _one(read_sequence), "moe3d sequence folder (with sequence.json)"),
    "7scenes": (_has_seven_scenes_sequences, read_7scenes, "7-Scenes scene folder (with seq-XX folders)"),
    "nrgbd": (_is_nrgbd_scene, _one(read_nrgbd), "NRGBD scene folder (with images/ and poses.txt)"),
    "tum": (_is_tum_sequence, _one(read_tum), "TUM RGB-D sequence folder (with rgb.txt)"),
    "scannet": (_is_scannet_scene, _one(read_scannet), "ScanNet scene folder (with color/ and intrinsic/)"),
}
SOURCE_KINDS = tuple(_KINDS)


def open_sources(kind: str, path: Path | str) -> list[SequenceSource]:
    """Every sequence of dataset `kind` at `path`: one scene / sequence folder, or a folder of them.

    Kinds: "moe3d", "7scenes", "nrgbd", "tum", "scannet". Synthetic data needs no files; use
    `windows.SyntheticWindows` for it.
    """
    if kind not in _KINDS:
        hint = " (synthetic data is generated, not read: use data.windows.SyntheticWindows)" if kind == "synthetic" else ""
        raise ValueError(f"unknown dataset kind {kind!r}{hint}; expected one of {', '.join(SOURCE_KINDS)}")
    is_unit, read, unit = _KINDS[kind]
    path = Path(path)
    if not path.is_dir():
        raise DatasetError(f"{path}: missing; expected a {unit} or a folder of them")
    if is_unit(path):
        return read(path)
    units = sorted(child for child in path.iterdir() if child.is_dir() and is_unit(child))
    if not units:
        raise DatasetError(f"{path}: expected a {unit} or a folder of them, found neither")
    return [source for child in units for source in read(child)]


# ----------------------------------------------------------------------------------------------
# Shared helpers


def _numbered_files(directory: Path, pattern: str, what: str) -> list[tuple[int, Path]]:
    """(number, path) of the files in `directory` whose whole name matches `pattern`, by number."""
    if not directory.is_dir():
        raise DatasetError(f"{directory}: missing; expected a folder of {what}")
    regex = re.compile(pattern)
    found = sorted((int(match.group(1)), path) for path in directory.iterdir() if (match := regex.fullmatch(path.name)))
    if not found:
        raise DatasetError(f"{directory}: empty; expected {what}")
    return found


def _read_matrix4(path: Path, what: str) -> np.ndarray:
    """A text file holding one 4x4 matrix, one row per line."""
    rows = read_number_rows(path, 4, what)
    if rows.shape != (4, 4):
        raise DatasetError(f"{path}: expected {what}, found {len(rows)} lines")
    return rows


def _source(
    name: str,
    where: Path,
    colors: list[Path],
    depths: list[Path],
    poses: np.ndarray,
    intrinsics: np.ndarray,
    depth_scale: float,
    **options: Any,
) -> FileSequenceSource:
    """A file source over the frames whose pose is finite (NaN / inf mark tracking failures)."""
    keep = np.flatnonzero(np.isfinite(poses).all(axis=(1, 2)))
    if keep.size == 0:
        raise DatasetError(f"{where}: no frame has a finite camera pose")
    colors, depths = [colors[i] for i in keep], [depths[i] for i in keep]
    intrinsics = np.repeat(intrinsics[None], keep.size, axis=0)
    return FileSequenceSource(name, colors, depths, poses[keep], intrinsics, depth_scale, **options)
