"""Readers for the monocular-depth evaluation sets, and the frame choice of the multi-view ones.

Each reader checks the layout and lists the samples up front, then reads one sample's pixels
only when it is indexed (`dataset[i]`), so a loop over a large set holds one image at a time.
A sample is a `DepthSample`: RGB image, ground-truth depth in metres exactly as the dataset
stores it (not zeroed outside `valid`), and `valid`, the pixels an evaluation scores. A missing
or malformed file raises a `DatasetError` naming the file and what was expected.

NYU Depth v2, official test split (654 images, 640x480), in either of two layouts:

- The official files `nyu_depth_v2_labeled.mat` and `splits.mat` side by side (`read_nyu_mat`).
  The labeled file is MATLAB v7.3, i.e. HDF5 (read with h5py). MATLAB holds `images` as
  480x640x3xN uint8 and `depths` as 480x640xN float32 metres (rows, columns, ...); HDF5 stores
  the reversed axis order, so h5py sees `images` [N, 3, 640, 480] and `depths` [N, 640, 480]
  ([n, channel, column, row]) and a sample is `images[n].transpose(2, 1, 0)` and `depths[n].T`.
  `depths` is the in-painted (hole-filled) depth; `depth_key="rawDepths"` selects the raw
  Kinect depth projected to the RGB camera, with 0 where there was no reading. `splits.mat`
  is MATLAB v5 with `testNdxs` (654x1) and `trainNdxs` (795x1), 1-based indices into the N=1449.
- The widely used extraction of the same files (`read_nyu_official_splits`, made by the BTS
  script extract_official_train_test_set_from_mat.py):
  `official_splits/test/<scene type>/rgb_00045.jpg` + `sync_depth_00045.png`. The number is
  the 0-based index into the labeled file (the `testNdxs` value minus 1). The PNG is uint16
  millimetres (`rawDepths` * 1000, truncated), 0 = no reading, so depth = value / 1000. The
  extraction also blacks out a 7-pixel image border (rows 7:474, columns 7:632 are kept),
  which the Eigen crop lies inside.

Both layouts name sample n `nyu/<n:05d>`, in ascending n. Intrinsics are those of NYU's RGB
camera (`NYU_INTRINSICS`, 640x480). Valid: finite and 1e-3 < depth < 10 m, and inside the Eigen
crop (rows 45:471, columns 41:601 of 480x640, `eigen_crop_mask`). The crop restricts the
metric, not the image: the model sees the full 640x480 image.

MPI-Sintel depth (`read_sintel`, `sintel_sequences`), its training set used for evaluation:
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

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator, Literal

import numpy as np
import scipy.io

from ..data.readers import _numbered_files, pinhole
from ..data.sources import DatasetError, read_color, read_depth_png, require_file

__all__ = [
    "DepthDataset",
    "DepthSample",
    "NYU_INTRINSICS",
    "NYUMatDataset",
    "NYUFolderDataset",
    "SintelDataset",
    "eigen_crop_mask",
    "nrgbd_frames",
    "nyu_valid",
    "read_cam",
    "read_dpt",
    "read_nyu",
    "read_nyu_mat",
    "read_nyu_official_splits",
    "read_sintel",
    "seven_scenes_frames",
    "sintel_sequences",
]

NYU_INTRINSICS = (518.8579, 519.4696, 325.5824, 253.7362)  # fx, fy, cx, cy of the 640x480 RGB camera
NYU_HW = (480, 640)
NYU_MIN_DEPTH = 1e-3  # metres; valid where NYU_MIN_DEPTH < depth < NYU_MAX_DEPTH
NYU_MAX_DEPTH = 10.0
EIGEN_CROP = (45, 471, 41, 601)  # rows [45, 471), columns [41, 601) of a 480x640 image
NYU_LABELED = "nyu_depth_v2_labeled.mat"
NYU_SPLITS = "splits.mat"
SINTEL_TAG = 202021.25  # float32 "PIEH" opening every .dpt and .cam file
SINTEL_PASSES = ("final", "clean")
PI3_FRAME_STEPS = {"7scenes": {"sparse": 200, "dense": 40}, "nrgbd": {"sparse": 500, "dense": 100}}

Split = Literal["test", "train"]


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


# ----------------------------------------------------------------------------------------------
# NYU Depth v2


def eigen_crop_mask(height: int, width: int) -> np.ndarray:
    """The Eigen evaluation crop: rows 45:471, columns 41:601 (0-based, end exclusive) -> bool mask.

    Defined for NYU's 480x640 only (score at the ground truth's size); other sizes are an error.
    """
    if (height, width) != NYU_HW:
        raise ValueError(f"the Eigen crop is defined for {NYU_HW[0]}x{NYU_HW[1]} NYU images, got {height}x{width}")
    top, bottom, left, right = EIGEN_CROP
    mask = np.zeros((height, width), dtype=bool)
    mask[top:bottom, left:right] = True
    return mask


def nyu_valid(depth: np.ndarray, eigen_crop: bool = True) -> np.ndarray:
    """NYU's scored pixels: finite, 1e-3 < depth < 10 m and, if `eigen_crop`, inside the Eigen crop."""
    valid = np.isfinite(depth) & (depth > NYU_MIN_DEPTH) & (depth < NYU_MAX_DEPTH)
    if eigen_crop:
        valid &= eigen_crop_mask(*depth.shape)
    return valid


def _nyu_sample(name: str, image: np.ndarray, depth: np.ndarray, eigen_crop: bool, scene: str | None) -> DepthSample:
    return DepthSample(name, image, depth, nyu_valid(depth, eigen_crop), pinhole(*NYU_INTRINSICS), scene=scene)


def _import_h5py() -> ModuleType:
    """h5py, imported only when a MATLAB v7.3 file is read."""
    try:
        import h5py
    except ImportError as error:
        raise ImportError(f"reading {NYU_LABELED} (MATLAB v7.3, an HDF5 file) needs h5py: pip install h5py") from error
    return h5py


class NYUMatDataset(DepthDataset):
    """NYU Depth v2 samples read from the official `nyu_depth_v2_labeled.mat` (see the module doc)."""

    def __init__(
        self,
        labeled_path: Path,
        indices: list[int],
        split: Split,
        depth_key: Literal["depths", "rawDepths"],
        eigen_crop: bool,
    ) -> None:
        super().__init__(f"nyu/{split}", [f"nyu/{index:05d}" for index in indices])
        self.labeled_path = labeled_path
        self.indices = indices
        self.depth_key = depth_key
        self.eigen_crop = eigen_crop

    def _read(self, index: int) -> DepthSample:
        n = self.indices[index]
        with _open_labeled(self.labeled_path) as labeled:
            image = np.ascontiguousarray(labeled["images"][n].transpose(2, 1, 0), dtype=np.uint8)
            depth = np.ascontiguousarray(labeled[self.depth_key][n].T, dtype=np.float32)
        return _nyu_sample(self.sample_names[index], image, depth, self.eigen_crop, None)


def _open_labeled(path: Path) -> Any:
    """The labeled .mat file as a read-only h5py.File; a DatasetError if it is not HDF5."""
    h5py = _import_h5py()
    try:
        return h5py.File(path, "r")
    except OSError as error:
        raise DatasetError(f"{path}: not readable as HDF5 ({error}); expected the MATLAB v7.3 {NYU_LABELED}") from None


def read_nyu_mat(
    labeled_path: Path | str,
    splits_path: Path | str,
    split: Split = "test",
    *,
    depth_key: Literal["depths", "rawDepths"] = "depths",
    eigen_crop: bool = True,
) -> NYUMatDataset:
    """The `split` samples (`testNdxs` / `trainNdxs` of `splits.mat`) of `nyu_depth_v2_labeled.mat`."""
    _check_split(split)
    if depth_key not in ("depths", "rawDepths"):
        raise ValueError(f"depth_key must be 'depths' or 'rawDepths', got {depth_key!r}")
    labeled_path = require_file(Path(labeled_path), f"the MATLAB v7.3 (HDF5) file {NYU_LABELED}")
    height, width = NYU_HW
    # h5py sees MATLAB's column-major arrays with their axes reversed.
    layouts = {
        "images": ((3, width, height), f"[N, 3, {width}, {height}] (MATLAB's {height}x{width}x3xN, axes reversed)"),
        depth_key: ((width, height), f"[N, {width}, {height}] (MATLAB's {height}x{width}xN, axes reversed)"),
    }
    counts = set()
    with _open_labeled(labeled_path) as labeled:
        for key, (tail, layout) in layouts.items():
            if key not in labeled:
                expected = f"{NYU_LABELED} with datasets 'images' and {depth_key!r}"
                raise DatasetError(f"{labeled_path}: no dataset {key!r}; expected {expected}")
            shape = labeled[key].shape
            if shape[1:] != tail:
                raise DatasetError(f"{labeled_path}: dataset {key!r} has shape {list(shape)}, expected {layout}")
            counts.add(shape[0])
    if len(counts) != 1:
        raise DatasetError(f"{labeled_path}: 'images' and {depth_key!r} differ in sample count {sorted(counts)}")
    indices = _read_split(Path(splits_path), split, counts.pop())
    return NYUMatDataset(labeled_path, indices, split, depth_key, eigen_crop)


def _check_split(split: str) -> None:
    if split not in ("test", "train"):
        raise ValueError(f"split must be 'test' or 'train', got {split!r}")


def _read_split(path: Path, split: Split, count: int) -> list[int]:
    """0-based sample indices from `splits.mat` (`testNdxs` / `trainNdxs` hold 1-based ones)."""
    key = f"{split}Ndxs"
    require_file(path, f"the MATLAB v5 file {NYU_SPLITS} with testNdxs and trainNdxs")
    try:
        contents = scipy.io.loadmat(str(path))
    except (ValueError, NotImplementedError, TypeError, OSError) as error:
        expected = f"the MATLAB v5 {NYU_SPLITS}"
        raise DatasetError(f"{path}: unreadable by scipy.io.loadmat ({error}); expected {expected}") from None
    if key not in contents:
        raise DatasetError(f"{path}: no variable {key!r}; expected {NYU_SPLITS} with testNdxs and trainNdxs")
    values = np.asarray(contents[key]).ravel()
    numeric = values.dtype.kind in "iuf" and values.size > 0
    if not numeric or np.any(values != np.round(values)) or values.min() < 1 or values.max() > count:
        raise DatasetError(f"{path}: {key} must hold 1-based indices in [1, {count}] (the labeled file's samples)")
    return [int(value) - 1 for value in values]


class NYUFolderDataset(DepthDataset):
    """NYU Depth v2 samples from the extracted `official_splits/<split>/<scene>/` folders."""

    def __init__(self, name: str, frames: list[tuple[str, int, Path, Path]], eigen_crop: bool) -> None:
        super().__init__(name, [f"nyu/{number:05d}" for _, number, _, _ in frames])
        self.frames = frames  # (scene, number, rgb jpg, sync_depth png)
        self.eigen_crop = eigen_crop

    def _read(self, index: int) -> DepthSample:
        scene, _, color_path, depth_path = self.frames[index]
        image = read_color(color_path)
        raw = read_depth_png(depth_path)
        for path, shape in ((color_path, image.shape[:2]), (depth_path, raw.shape)):
            if shape != NYU_HW:
                found = f"{shape[1]}x{shape[0]}"
                raise DatasetError(f"{path}: expected a {NYU_HW[1]}x{NYU_HW[0]} NYU image, got {found}")
        depth = raw.astype(np.float32) / np.float32(1000.0)
        return _nyu_sample(self.sample_names[index], image, depth, self.eigen_crop, scene)


def read_nyu_official_splits(split_dir: Path | str, *, eigen_crop: bool = True) -> NYUFolderDataset:
    """The samples of one extracted split folder, e.g. `.../official_splits/test`, by number."""
    split_dir = Path(split_dir)
    if not split_dir.is_dir():
        raise DatasetError(f"{split_dir}: missing; expected a folder of <scene>/rgb_00000.jpg + sync_depth_00000.png")
    frames = []
    for scene_dir in sorted(path for path in split_dir.iterdir() if path.is_dir()):
        for number, color in _numbered_files(scene_dir, r"rgb_(\d+)\.jpg", "NYU images rgb_00000.jpg, ..."):
            depth = scene_dir / f"sync_depth_{color.name[len('rgb_') : -len('.jpg')]}.png"
            require_file(depth, "a 16-bit millimetre depth PNG beside each rgb_*.jpg")
            frames.append((scene_dir.name, number, color, depth))
    if not frames:
        expected = f"{split_dir}/<scene>/rgb_00000.jpg + sync_depth_00000.png"
        raise DatasetError(f"{split_dir}: no scene folders; expected {expected}")
    frames.sort(key=lambda frame: frame[1])
    return NYUFolderDataset(f"nyu/{split_dir.name}", frames, eigen_crop)


def read_nyu(
    root: Path | str,
    split: Split = "test",
    *,
    depth_key: Literal["depths", "rawDepths"] = "rawDepths",
    eigen_crop: bool = True,
) -> NYUMatDataset | NYUFolderDataset:
    """NYU Depth v2 `split` in whichever layout `root` holds.

    `root` is `nyu_depth_v2_labeled.mat` (with `splits.mat` beside it), a folder holding both
    files, a folder holding `official_splits/<split>/`, or `official_splits` itself. The default
    ground truth is the raw depth (`rawDepths`), which both layouts hold, so the two give the
    same numbers; `depth_key="depths"` (the in-painted depth) exists in the .mat files only.
    """
    _check_split(split)
    root = Path(root)
    labeled = root if root.is_file() else root / NYU_LABELED
    if labeled.is_file():
        return read_nyu_mat(labeled, labeled.with_name(NYU_SPLITS), split, depth_key=depth_key, eigen_crop=eigen_crop)
    split_dir = root / split if root.name == "official_splits" else root / "official_splits" / split
    if split_dir.is_dir():
        if depth_key != "rawDepths":
            raise ValueError(f"{split_dir}: the extracted PNGs hold rawDepths only; depths exist in {NYU_LABELED} only")
        return read_nyu_official_splits(split_dir, eigen_crop=eigen_crop)
    expected = f"{NYU_LABELED} + {NYU_SPLITS}, or official_splits/{split}/<scene>/rgb_*.jpg + sync_depth_*.png"
    raise DatasetError(f"{root}: expected {expected}, found neither")


# ----------------------------------------------------------------------------------------------
# MPI-Sintel depth


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


# ----------------------------------------------------------------------------------------------
# Multi-view frame selection


def _protocol_frames(dataset: str, num_frames: int, density: str) -> list[int]:
    steps = PI3_FRAME_STEPS[dataset]
    if density not in steps:
        raise ValueError(f"density must be one of {tuple(steps)}, got {density!r}")
    if num_frames < 0:
        raise ValueError(f"num_frames must be >= 0, got {num_frames}")
    return list(range(0, num_frames, steps[density]))


def seven_scenes_frames(num_frames: int, density: str) -> list[int]:
    """pi3 protocol frames of a 7-Scenes sequence of `num_frames`: 0, step, 2*step, ...

    step = 200 ("sparse") or 40 ("dense"). Indices are positions in the reader's source, which
    are the file numbers unless the reader dropped frames without a finite pose.
    """
    return _protocol_frames("7scenes", num_frames, density)


def nrgbd_frames(num_frames: int, density: str) -> list[int]:
    """pi3 protocol frames of an NRGBD scene of `num_frames`: 0, step, 2*step, ...

    step = 500 ("sparse") or 100 ("dense"). Indices are positions in the reader's source, which
    skips frames whose pose is NaN / inf, so they equal image numbers only when none was skipped.
    """
    return _protocol_frames("nrgbd", num_frames, density)
