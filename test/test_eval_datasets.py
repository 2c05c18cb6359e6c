"""Evaluation dataset readers on tiny folders in each published layout and binary file format."""
from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io

from moe3d_ros.data.sources import DatasetError
from moe3d_ros.eval.datasets import (
    eigen_crop_mask,
    nrgbd_frames,
    read_cam,
    read_dpt,
    read_nyu,
    read_nyu_official_splits,
    read_sintel,
    seven_scenes_frames,
    sintel_sequences,
)

h5py = pytest.importorskip("h5py")

NYU_COUNT = 4
NYU_TRAIN = [1, 3]  # 1-based, as in splits.mat
NYU_TEST = [2, 4]
NYU_K = [[518.8579, 0, 325.5824], [0, 519.4696, 253.7362], [0, 0, 1]]


# ----------------------------------------------------------------------------------------------
# NYU Depth v2: 480x640; the labeled .mat holds MATLAB arrays, which h5py sees with axes reversed


def nyu_image(n: int) -> np.ndarray:
    """Four flat quadrants (orientation shows in any layout, JPEG included); blue in the top half encodes n."""
    image = np.empty((480, 640, 3), np.uint8)
    image[:240, :320] = (200, 20, 40 * n)
    image[:240, 320:] = (20, 200, 40 * n)
    image[240:, :320] = (20, 20, 200)
    image[240:, 320:] = (200, 200, 200)
    return image


def nyu_depth(n: int, raw: bool = False) -> np.ndarray:
    """Metres growing down the rows (1 -> 3) and along the columns (+0.5); one hole, one pixel past 10 m."""
    rows, cols = np.mgrid[0:480, 0:640]
    depth = (1.0 + 2.0 * rows / 480 + 0.5 * cols / 640 + 0.25 * n).astype(np.float32)
    depth[200, 300] = 12.0
    if raw:
        depth[100, 100] = 0.0  # no Kinect reading
    return depth


def write_nyu_mat(folder: Path) -> Path:
    """`nyu_depth_v2_labeled.mat` as MATLAB v7.3 writes it (HDF5, 512-byte user block) + `splits.mat` (v5)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "nyu_depth_v2_labeled.mat"
    with h5py.File(path, "w", userblock_size=512) as f:
        # MATLAB images(row, col, channel, n) is [n, channel, col, row] to HDF5 readers.
        f.create_dataset("images", data=np.stack([nyu_image(n).transpose(2, 1, 0) for n in range(NYU_COUNT)]))
        f.create_dataset("depths", data=np.stack([nyu_depth(n).T for n in range(NYU_COUNT)]))
        f.create_dataset("rawDepths", data=np.stack([nyu_depth(n, raw=True).T for n in range(NYU_COUNT)]))
        for key, matlab_class in (("images", "uint8"), ("depths", "single"), ("rawDepths", "single")):
            f[key].attrs["MATLAB_class"] = np.bytes_(matlab_class)
    column = lambda values: np.asarray(values, dtype=np.float64)[:, None]  # noqa: E731 - MATLAB double column
    scipy.io.savemat(folder / "splits.mat", {"trainNdxs": column(NYU_TRAIN), "testNdxs": column(NYU_TEST)})
    return path


def write_official_splits(folder: Path) -> Path:
    """What BTS's extraction script writes: rgb_<n>.jpg and rawDepths * 1000 as uint16 sync_depth_<n>.png."""
    scenes = {1: ("test", "bathroom"), 3: ("test", "kitchen"), 0: ("train", "bedroom"), 2: ("train", "bedroom")}
    for n, (split, scene) in scenes.items():
        scene_dir = folder / "official_splits" / split / scene
        scene_dir.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(scene_dir / f"rgb_{n:05d}.jpg"), cv2.cvtColor(nyu_image(n), cv2.COLOR_RGB2BGR))
        raw = (nyu_depth(n, raw=True) * 1000.0).astype(np.uint16)
        assert cv2.imwrite(str(scene_dir / f"sync_depth_{n:05d}.png"), raw)
    return folder / "official_splits"


def expected_nyu_valid(depth: np.ndarray) -> np.ndarray:
    valid = (depth > 1e-3) & (depth < 10.0)
    valid[:45], valid[471:], valid[:, :41], valid[:, 601:] = False, False, False, False
    return valid


def test_eigen_crop_mask():
    mask = eigen_crop_mask(480, 640)
    assert mask.sum() == (471 - 45) * (601 - 41)
    assert mask[45, 41] and mask[470, 600] and mask[45:471, 41:601].all()
    assert not mask[44, 300] and not mask[471, 300] and not mask[240, 40] and not mask[240, 601]
    with pytest.raises(ValueError, match="480x640"):
        eigen_crop_mask(240, 320)


def test_nyu_mat_test_split_orientation_depth_valid(tmp_path):
    write_nyu_mat(tmp_path / "nyu")
    dataset = read_nyu(tmp_path / "nyu", depth_key="depths")
    assert len(dataset) == 2 and dataset.sample_names == ["nyu/00001", "nyu/00003"]  # testNdxs 2, 4
    sample = dataset[1]
    assert sample.name == "nyu/00003" and sample.scene is None and sample.frame is None
    assert sample.image.shape == (480, 640, 3) and sample.image.dtype == np.uint8
    np.testing.assert_array_equal(sample.image, nyu_image(3))
    assert tuple(sample.image[0, 0]) == (200, 20, 120) and tuple(sample.image[0, 639]) == (20, 200, 120)
    np.testing.assert_array_equal(sample.depth, nyu_depth(3))
    assert sample.depth[479, 0] == pytest.approx(1 + 2 * 479 / 480 + 0.75) and sample.depth.dtype == np.float32
    np.testing.assert_array_equal(sample.valid, expected_nyu_valid(nyu_depth(3)))
    assert not sample.valid[200, 300]  # 12 m, past the 10 m cap
    np.testing.assert_allclose(sample.intrinsics, NYU_K)
    assert [s.name for s in dataset] == dataset.sample_names and dataset[-2].name == "nyu/00001"
    with pytest.raises(IndexError, match="sample 2 out of range"):
        dataset[2]


def test_nyu_mat_train_split_raw_depth_and_no_crop(tmp_path):
    labeled = write_nyu_mat(tmp_path / "nyu")
    train = read_nyu(labeled, "train")  # the .mat file itself; splits.mat beside it
    assert train.sample_names == ["nyu/00000", "nyu/00002"]
    raw = read_nyu(tmp_path / "nyu", depth_key="rawDepths", eigen_crop=False)[0]
    assert raw.depth[100, 100] == 0 and not raw.valid[100, 100]
    assert raw.valid[0, 0] and raw.valid.sum() == 480 * 640 - 2  # only the hole and the 12 m pixel


def test_nyu_official_splits_match_mat_raw_depth(tmp_path):
    split_root = write_official_splits(tmp_path)
    write_nyu_mat(tmp_path)
    for root in (tmp_path, split_root, split_root / "test"):
        dataset = read_nyu(root) if root.name != "test" else read_nyu_official_splits(root)
        assert dataset.sample_names == ["nyu/00001", "nyu/00003"] and len(dataset) == 2
    folder = read_nyu(split_root)
    sample = folder[0]
    assert sample.scene == "bathroom" and folder[1].scene == "kitchen"
    raw = (nyu_depth(1, raw=True) * 1000.0).astype(np.uint16)
    np.testing.assert_array_equal(sample.depth, raw.astype(np.float32) / np.float32(1000.0))
    assert sample.depth[100, 100] == 0 and not sample.valid[100, 100] and not sample.valid[200, 300]
    np.testing.assert_array_equal(sample.valid, expected_nyu_valid(sample.depth))
    # JPEG: compare the flat quadrants away from their edges.
    for rows, cols in ((slice(40, 200), slice(40, 280)), (slice(40, 200), slice(360, 600)), (slice(280, 440), slice(40, 280))):
        np.testing.assert_allclose(sample.image[rows, cols], nyu_image(1)[rows, cols], atol=12)
    np.testing.assert_allclose(sample.intrinsics, NYU_K)
    # The .mat read with rawDepths agrees up to the millimetre truncation of the PNGs.
    mat = read_nyu(tmp_path / "nyu_depth_v2_labeled.mat", depth_key="rawDepths")[0]
    assert mat.name == sample.name
    np.testing.assert_allclose(mat.depth, sample.depth, atol=1.001e-3)
    assert read_nyu(split_root, "train").sample_names == ["nyu/00000", "nyu/00002"]


def test_nyu_errors(tmp_path, monkeypatch):
    with pytest.raises(DatasetError, match="expected nyu_depth_v2_labeled.mat .* found neither"):
        read_nyu(tmp_path)
    labeled = write_nyu_mat(tmp_path / "nyu")
    (tmp_path / "nyu" / "splits.mat").unlink()
    with pytest.raises(DatasetError, match=r"splits\.mat: missing; expected the MATLAB v5 file"):
        read_nyu(labeled)
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(ImportError, match="pip install h5py"):
        read_nyu(labeled)
    monkeypatch.undo()

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "nyu_depth_v2_labeled.mat").write_bytes(b"MATLAB 5.0 MAT-file" + bytes(200))
    with pytest.raises(DatasetError, match="not readable as HDF5"):
        read_nyu(bad)
    with h5py.File(bad / "nyu_depth_v2_labeled.mat", "w") as f:  # HxW order, as if not transposed
        f.create_dataset("images", data=np.zeros((2, 480, 640, 3), np.uint8))
        f.create_dataset("depths", data=np.zeros((2, 480, 640), np.float32))
    with pytest.raises(DatasetError, match=r"'images' has shape \[2, 480, 640, 3\], expected \[N, 3, 640, 480\]"):
        read_nyu(bad)

    write_nyu_mat(tmp_path / "nyu")
    scipy.io.savemat(tmp_path / "nyu" / "splits.mat", {"testNdxs": np.array([[0.0], [1.0]])})
    with pytest.raises(DatasetError, match=r"testNdxs must hold 1-based indices in \[1, 4\]"):
        read_nyu(labeled)

    split_root = write_official_splits(tmp_path / "folders")
    (split_root / "test" / "kitchen" / "sync_depth_00003.png").unlink()
    with pytest.raises(DatasetError, match=r"kitchen/sync_depth_00003\.png: missing; expected a 16-bit millimetre"):
        read_nyu(split_root)


# ----------------------------------------------------------------------------------------------
# Sintel: .dpt / .cam binary files, frames numbered from 1


SINTEL_HW = (12, 20)  # not square, so a transposition shows
SINTEL_SCENES = {"alley_1": 3, "bamboo_2": 2}


def write_dpt(path: Path, depth: np.ndarray, tag: float = 202021.25) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        np.array([tag], "<f4").tofile(f)
        np.array([depth.shape[1], depth.shape[0]], "<i4").tofile(f)  # width, height
        depth.astype("<f4").tofile(f)  # row-major


def write_cam(path: Path, intrinsics: np.ndarray, world_to_camera: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        np.array([202021.25], "<f4").tofile(f)
        intrinsics.astype("<f8").tofile(f)
        world_to_camera.astype("<f8").tofile(f)


def sintel_depth(scene_index: int, number: int) -> np.ndarray:
    rows, cols = np.mgrid[0 : SINTEL_HW[0], 0 : SINTEL_HW[1]]
    depth = (1.0 + rows + 0.01 * cols + 100.0 * scene_index + number).astype(np.float32)
    depth[0, 1], depth[0, 2], depth[0, 3] = 0.0, np.inf, 1000.0  # 0 and inf invalid; far depth stays
    return depth


def sintel_image(scene_index: int, number: int, pass_: str) -> np.ndarray:
    rows, cols = np.mgrid[0 : SINTEL_HW[0], 0 : SINTEL_HW[1]]
    blue = 20 * number + 5 * scene_index + (100 if pass_ == "clean" else 0)
    return np.stack([rows * 10, cols * 10, np.full_like(rows, blue)], axis=-1).astype(np.uint8)


def sintel_camera(scene_index: int, number: int) -> tuple[np.ndarray, np.ndarray]:
    angle = 0.1 * number + scene_index
    rotation = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
    intrinsics = np.array([[30.0 + number, 0, 9.5], [0, 30.0 + number, 5.5], [0, 0, 1]])
    return intrinsics, np.hstack([rotation, [[number], [-1.0], [2.0 * scene_index]]])


@pytest.fixture()
def sintel_root(tmp_path: Path) -> Path:
    """The two archives extracted side by side, as MPI-Sintel-complete and the depth archive."""
    images = tmp_path / "sintel" / "MPI-Sintel-complete" / "training"
    depth = tmp_path / "sintel" / "MPI-Sintel-depth-training-20150305" / "training"
    for scene_index, (scene, frames) in enumerate(SINTEL_SCENES.items()):
        for number in range(1, frames + 1):
            stem = f"frame_{number:04d}"
            for pass_ in ("final", "clean"):
                path = images / pass_ / scene / f"{stem}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                rgb = sintel_image(scene_index, number, pass_)
                assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            write_dpt(depth / "depth" / scene / f"{stem}.dpt", sintel_depth(scene_index, number))
            write_cam(depth / "camdata_left" / scene / f"{stem}.cam", *sintel_camera(scene_index, number))
    return tmp_path / "sintel"


def test_sintel_frames_depth_cameras(sintel_root):
    dataset = read_sintel(sintel_root)
    assert len(dataset) == 5 and dataset.name == "sintel/final"
    assert dataset.sample_names[:2] == ["sintel/alley_1/frame_0001", "sintel/alley_1/frame_0002"]
    sample = dataset[4]  # bamboo_2, frame 2
    assert (sample.name, sample.scene, sample.frame) == ("sintel/bamboo_2/frame_0002", "bamboo_2", 2)
    np.testing.assert_array_equal(sample.image, sintel_image(1, 2, "final"))
    np.testing.assert_array_equal(sample.depth, sintel_depth(1, 2))
    assert sample.depth[11, 0] == pytest.approx(1 + 11 + 102) and sample.depth[0, 19] == pytest.approx(1 + 0.19 + 102)
    assert not sample.valid[0, 1] and not sample.valid[0, 2] and sample.valid[0, 3]  # 0, inf invalid; 1000 m kept
    assert sample.valid.sum() == 12 * 20 - 2
    intrinsics, world_to_camera = sintel_camera(1, 2)
    np.testing.assert_allclose(sample.intrinsics, intrinsics)
    point = np.array([0.3, -0.2, 4.0])
    camera_point = world_to_camera[:, :3] @ point + world_to_camera[:, 3]
    np.testing.assert_allclose(sample.cam_to_world[:3, :3] @ camera_point + sample.cam_to_world[:3, 3], point, atol=1e-12)
    assert tuple(read_sintel(sintel_root, "clean")[0].image[0, 0]) == (0, 0, 20 + 100)


def test_sintel_sequences_and_merged_layout(sintel_root):
    sequences = sintel_sequences(sintel_root)
    assert list(sequences) == ["alley_1", "bamboo_2"]
    assert [len(seq) for seq in sequences.values()] == [3, 2] and sequences["alley_1"].name == "sintel/final/alley_1"
    assert [sample.frame for sample in sequences["alley_1"]] == [1, 2, 3]
    # Both archives unzipped into one folder: a single training/ with final/, depth/ and camdata_left/.
    merged = sintel_root / "merged" / "training"
    merged.mkdir(parents=True)
    for part in ("MPI-Sintel-complete", "MPI-Sintel-depth-training-20150305"):
        for folder in (sintel_root / part / "training").iterdir():
            folder.rename(merged / folder.name)
    assert len(read_sintel(sintel_root / "merged")) == 5 and len(read_sintel(merged)) == 5


def test_sintel_errors(sintel_root, tmp_path):
    depth_dir = sintel_root / "MPI-Sintel-depth-training-20150305" / "training" / "depth" / "alley_1"
    dataset = read_sintel(sintel_root)

    data = (depth_dir / "frame_0002.dpt").read_bytes()
    (depth_dir / "frame_0002.dpt").write_bytes(data[:-7])
    with pytest.raises(DatasetError, match=r"frame_0002\.dpt: truncated: 965 bytes, expected 972 for 20x12"):
        dataset[1]
    (depth_dir / "frame_0002.dpt").write_bytes(data[:10])
    with pytest.raises(DatasetError, match=r"frame_0002\.dpt: truncated \(10 bytes\), no width and height"):
        read_dpt(depth_dir / "frame_0002.dpt")
    write_dpt(depth_dir / "frame_0002.dpt", sintel_depth(0, 2), tag=1.0)
    with pytest.raises(DatasetError, match=r"frame_0002\.dpt: wrong tag 1\.0, expected 202021\.25"):
        dataset[1]
    cam = depth_dir.parent.parent / "camdata_left" / "alley_1" / "frame_0001.cam"
    cam.write_bytes(cam.read_bytes()[:100])
    with pytest.raises(DatasetError, match=r"frame_0001\.cam: truncated: 100 bytes, expected 172"):
        read_cam(cam)

    (depth_dir / "frame_0003.dpt").unlink()
    with pytest.raises(DatasetError, match=r"training/depth/alley_1/frame_0003\.dpt: missing; expected the Sintel depth"):
        read_sintel(sintel_root)
    with pytest.raises(DatasetError, match=r"no training/depth folder within 3 levels; expected MPI-Sintel-depth"):
        read_sintel(sintel_root / "MPI-Sintel-complete")
    copy = sintel_root / "copy" / "training" / "final"
    copy.mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"several training/final folders"):
        read_sintel(sintel_root)
    with pytest.raises(ValueError, match="pass_ must be one of"):
        read_sintel(sintel_root, "albedo")


# ----------------------------------------------------------------------------------------------
# pi3 multi-view frame selection


def test_protocol_frames():
    assert seven_scenes_frames(1000, "sparse") == [0, 200, 400, 600, 800]
    assert seven_scenes_frames(81, "dense") == [0, 40, 80]
    assert nrgbd_frames(1001, "sparse") == [0, 500, 1000]
    assert nrgbd_frames(250, "dense") == [0, 100, 200]
    assert nrgbd_frames(0, "dense") == []
    with pytest.raises(ValueError, match="density must be one of"):
        seven_scenes_frames(100, "medium")
