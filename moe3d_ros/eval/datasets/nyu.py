"""NYU Depth v2, official test split (654 images, 640x480), in either of two layouts:

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
"""
from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import numpy as np
import scipy.io

from ...data.readers import _numbered_files, pinhole
from ...data.sources import DatasetError, read_color, read_depth_png, require_file
from .base import DepthDataset, DepthSample

NYU_INTRINSICS = (518.8579, 519.4696, 325.5824, 253.7362)  # fx, fy, cx, cy of the 640x480 RGB camera
NYU_HW = (480, 640)
NYU_MIN_DEPTH = 1e-3  # metres; valid where NYU_MIN_DEPTH < depth < NYU_MAX_DEPTH
NYU_MAX_DEPTH = 10.0
EIGEN_CROP = (45, 471, 41, 601)  # rows [45, 471), columns [41, 601) of a 480x640 image
NYU_LABELED = "nyu_depth_v2_labeled.mat"
NYU_SPLITS = "splits.mat"

Split = Literal["test", "train"]


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
