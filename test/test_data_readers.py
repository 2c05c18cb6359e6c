"""Dataset readers on tiny folders built in each dataset's published layout and file formats."""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from moe3d_ros.data.readers import open_sources, read_7scenes, read_nrgbd, read_scannet, read_tum
from moe3d_ros.data.sources import DatasetError


def write_color(path: Path, rgb: tuple[int, int, int], hw: tuple[int, int]) -> None:
    """A flat RGB image with a horizontal ramp in the last channel, written as the file type of `path`."""
    image = np.empty((*hw, 3), np.uint8)
    image[...] = rgb
    image[..., 2] = np.linspace(0, 255, hw[1]).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))


def write_depth(path: Path, raw: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), raw.astype(np.uint16))


def random_pose(rng: np.random.Generator) -> np.ndarray:
    pose = np.eye(4)
    pose[:3, :3] = Rotation.from_rotvec(rng.normal(size=3) * 0.5).as_matrix()
    pose[:3, 3] = rng.normal(size=3)
    return pose


def matrix_lines(matrix: np.ndarray, separator: str = " ") -> str:
    return "".join(separator.join(f"{v:.9e}" for v in row) + "\n" for row in matrix)


# ----------------------------------------------------------------------------------------------
# 7-Scenes: 640x480 (the size its fixed intrinsics describe), depth in mm with 65535 = invalid


@pytest.fixture()
def seven_scenes(tmp_path: Path) -> tuple[Path, list[np.ndarray]]:
    scene = tmp_path / "7scenes" / "chess"
    rng = np.random.default_rng(0)
    poses = []
    for seq in ("seq-01", "seq-02"):
        for index in range(3):
            stem = scene / seq / f"frame-{index:06d}"
            write_color(stem.with_name(stem.name + ".color.png"), (10 * index, 100, 50), (480, 640))
            raw = np.full((480, 640), 1000 + 250 * index)
            raw[0, 0], raw[0, 1] = 65535, 0
            write_depth(stem.with_name(stem.name + ".depth.png"), raw)
            poses.append(random_pose(rng))
            # The dataset's own text layout: tab-separated, trailing whitespace.
            text = "".join("\t".join(f"{v: .7e}" for v in row) + "\t\n" for row in poses[-1])
            stem.with_name(stem.name + ".pose.txt").write_text(text)
    (scene / "TrainSplit.txt").write_text("sequence1\n")
    (scene / "TestSplit.txt").write_text("sequence2\n")
    return scene, poses


def test_7scenes_frames_depth_poses_intrinsics(seven_scenes):
    scene, poses = seven_scenes
    sources = read_7scenes(scene)
    assert [s.name for s in sources] == ["7scenes/chess/seq-01", "7scenes/chess/seq-02"]
    first = sources[0]
    assert len(first) == 3 and first.image_hw(0) == (480, 640)
    np.testing.assert_allclose(first.cam_to_world, np.stack(poses[:3]), atol=1e-6)
    np.testing.assert_allclose(first.intrinsics[0], [[585, 0, 320], [0, 585, 240], [0, 0, 1]])
    frames = first.load([2, 0])
    assert frames.images.shape == (2, 480, 640, 3) and tuple(frames.images[0, 5, 5, :2]) == (20, 100)
    assert frames.depth[0, 10, 10] == pytest.approx(1.5) and frames.depth[1, 10, 10] == pytest.approx(1.0)
    assert not frames.valid[:, 0, 0].any() and not frames.valid[:, 0, 1].any()  # 65535 and 0 are invalid
    assert np.all(frames.depth[:, 0, :2] == 0) and frames.valid[:, 1:, :].all()


def test_7scenes_sequence_selection(seven_scenes):
    scene, _ = seven_scenes
    assert [s.name for s in read_7scenes(scene, "test")] == ["7scenes/chess/seq-02"]
    assert [s.name for s in read_7scenes(scene, [1])] == ["7scenes/chess/seq-01"]
    assert len(open_sources("7scenes", scene.parent)) == 2


def test_7scenes_malformed_pose_line(seven_scenes):
    scene, _ = seven_scenes
    (scene / "seq-01" / "frame-000001.pose.txt").write_text("1 0 0 0\n0 1 0\n0 0 1 0\n0 0 0 1\n")
    with pytest.raises(DatasetError, match=r"frame-000001\.pose\.txt line 2: expected 4 numbers"):
        read_7scenes(scene)


def test_7scenes_missing_depth(seven_scenes):
    scene, _ = seven_scenes
    (scene / "seq-02" / "frame-000002.depth.png").unlink()
    with pytest.raises(DatasetError, match=r"frame-000002\.depth\.png: missing"):
        read_7scenes(scene)


def test_7scenes_empty_folders(tmp_path: Path):
    with pytest.raises(DatasetError, match="no seq-XX folders"):
        read_7scenes(tmp_path)
    (tmp_path / "seq-01").mkdir()
    with pytest.raises(DatasetError, match=r"seq-01: empty; expected 7-Scenes colour images"):
        read_7scenes(tmp_path)


def test_7scenes_image_of_the_wrong_size(seven_scenes):
    scene, _ = seven_scenes
    write_depth(scene / "seq-01" / "frame-000001.depth.png", np.ones((48, 64)))
    with pytest.raises(DatasetError, match=r"frame-000001\.depth\.png: expected a 480x640 depth image"):
        read_7scenes(scene)[0].load([1])


# ----------------------------------------------------------------------------------------------
# NRGBD: OpenGL camera-to-world poses, NaN marks an invalid frame, focal.txt


def opengl_pose(position: np.ndarray, yaw: float) -> np.ndarray:
    """An OpenGL camera (x right, y up, looking along -z) at `position`, turned `yaw` about world y."""
    pose = np.eye(4)
    pose[:3, :3] = Rotation.from_euler("y", yaw).as_matrix()
    pose[:3, 3] = position
    return pose


@pytest.fixture()
def nrgbd(tmp_path: Path) -> tuple[Path, list[np.ndarray]]:
    scene = tmp_path / "neural_rgbd_data" / "kitchen"
    invalid = np.full((4, 4), np.nan)  # how the dataset marks a frame without a pose
    poses = [opengl_pose(np.array([0.5, 1.0, 2.0]), 0.3), invalid, opengl_pose(np.array([-1.0, 0.2, 0.0]), -0.4)]
    for index in range(3):
        write_color(scene / "images" / f"img{index}.png", (index, 2, 3), (48, 64))
        write_depth(scene / "depth" / f"depth{index}.png", np.full((48, 64), 2000 + index))
    (scene / "poses.txt").write_text("".join(matrix_lines(pose) for pose in poses))
    (scene / "focal.txt").write_text("55.5\n")
    return scene, poses


def test_nrgbd_skips_invalid_frames_and_reads_depth(nrgbd):
    scene, _ = nrgbd
    source = read_nrgbd(scene)
    assert source.name == "nrgbd/kitchen" and len(source) == 2  # img1's pose is NaN
    frames = source.load([0, 1])
    assert tuple(frames.images[:, 0, 0, 0]) == (0, 2)  # img0 and img2
    np.testing.assert_allclose(frames.depth[:, 3, 3], [2.0, 2.002], rtol=1e-6)
    np.testing.assert_allclose(source.intrinsics[0], [[55.5, 0, 32], [0, 55.5, 24], [0, 0, 1]])


def test_nrgbd_opengl_poses_become_opencv(nrgbd):
    scene, poses = nrgbd
    source = read_nrgbd(scene)
    # A point 2 m in front of camera 0, 0.1 m to its right and 0.2 m above its centre (OpenGL axes).
    point = poses[0] @ np.array([0.1, 0.2, -2.0, 1.0])
    camera = np.linalg.inv(source.cam_to_world[0]) @ point
    assert camera[2] == pytest.approx(2.0)  # in front: +z in OpenCV
    u, v = (source.intrinsics[0] @ camera[:3])[:2] / camera[2]
    assert u == pytest.approx(32 + 55.5 * 0.1 / 2) and v == pytest.approx(24 - 55.5 * 0.2 / 2)  # above = smaller v
    assert np.linalg.det(source.cam_to_world[0][:3, :3]) == pytest.approx(1.0)


def test_nrgbd_errors(nrgbd):
    scene, _ = nrgbd
    lines = (scene / "poses.txt").read_text().splitlines()
    (scene / "poses.txt").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(DatasetError, match=r"poses.txt: expected 12 lines"):
        read_nrgbd(scene)
    (scene / "poses.txt").write_text("\n".join(lines[:5] + ["0 0 x 1"] + lines[6:]) + "\n")
    with pytest.raises(DatasetError, match=r"poses.txt line 6: expected 4 numbers"):
        read_nrgbd(scene)
    (scene / "poses.txt").write_text("\n".join(lines) + "\n")
    (scene / "focal.txt").unlink()
    with pytest.raises(DatasetError, match=r"focal.txt: missing"):
        read_nrgbd(scene)
    for path in (scene / "images").iterdir():
        path.unlink()
    with pytest.raises(DatasetError, match=r"images: empty"):
        read_nrgbd(scene)


# ----------------------------------------------------------------------------------------------
# TUM RGB-D: timestamped lists with comment headers, depth factor 5000, interpolated poses

T0 = 1305031102.175304


def write_tum(folder: Path, gt_lines: list[str]) -> None:
    rgb_times = [T0, T0 + 0.033, T0 + 0.066, T0 + 0.5]  # the last has no depth within 0.02 s
    depth_times = [T0 + 0.004, T0 + 0.031, T0 + 0.07, T0 + 0.8]
    rgb = ["# color images", f"# file: '{folder.name}.bag'", "# timestamp filename"]
    depth = ["# depth maps", f"# file: '{folder.name}.bag'", "# timestamp filename"]
    for index, (tr, td) in enumerate(zip(rgb_times, depth_times)):
        rgb.append(f"{tr:.6f} rgb/{tr:.6f}.png")
        depth.append(f"{td:.6f} depth/{td:.6f}.png")
        write_color(folder / "rgb" / f"{tr:.6f}.png", (index, 0, 0), (480, 640))
        write_depth(folder / "depth" / f"{td:.6f}.png", np.full((480, 640), 5000 * (index + 1)))
    (folder / "rgb.txt").write_text("\n".join(rgb) + "\n")
    (folder / "depth.txt").write_text("\n".join(depth) + "\n")
    header = ["# ground truth trajectory", f"# file: '{folder.name}.bag'", "# timestamp tx ty tz qx qy qz qw"]
    (folder / "groundtruth.txt").write_text("\n".join(header + gt_lines) + "\n")


def gt_line(t: float, position: tuple[float, float, float], yaw_deg: float) -> str:
    qx, qy, qz, qw = Rotation.from_euler("z", yaw_deg, degrees=True).as_quat()
    return f"{t:.4f} " + " ".join(f"{v:.4f}" for v in (*position, qx, qy, qz, qw))


@pytest.fixture()
def tum(tmp_path: Path) -> Path:
    folder = tmp_path / "rgbd_dataset_freiburg1_xyz"
    gt = [
        gt_line(T0 - 0.0053, (0.0, 0.0, 0.0), 0.0),
        gt_line(T0 + 0.0047, (1.0, 0.0, 0.0), 10.0),  # T0 lies 53% of the way from the first sample
        gt_line(T0 + 0.03, (1.0, 2.0, 0.0), 10.0),
        gt_line(T0 + 0.09, (1.0, 2.0, 3.0), 10.0),  # T0 + 0.066 is 0.024 s from its nearest sample: dropped
        gt_line(T0 + 0.49, (1.0, 2.0, 3.0), 10.0),
    ]
    write_tum(folder, gt)
    return folder


def test_tum_association_depth_and_intrinsics(tum: Path):
    source = read_tum(tum)
    assert source.name == "tum/rgbd_dataset_freiburg1_xyz"
    assert len(source) == 2  # frame 2: no pose within 0.02 s; frame 3: no depth within 0.02 s
    np.testing.assert_allclose(source.intrinsics[0], [[517.3, 0, 318.6], [0, 516.5, 255.3], [0, 0, 1]])
    frames = source.load([0, 1])
    assert tuple(frames.images[:, 0, 0, 0]) == (0, 1)
    np.testing.assert_allclose(frames.depth[:, 100, 100], [1.0, 2.0])  # 5000 and 10000 / 5000


def test_tum_pose_interpolation(tum: Path):
    source = read_tum(tum)
    weight = 0.0053 / 0.01
    np.testing.assert_allclose(source.cam_to_world[0, :3, 3], [weight, 0, 0], atol=1e-3)
    yaw = math.degrees(math.atan2(source.cam_to_world[0, 1, 0], source.cam_to_world[0, 0, 0]))
    assert yaw == pytest.approx(10.0 * weight, abs=0.05)  # slerp about one axis: linear in angle
    # T0 + 0.033 lies 5% of the way from the sample at T0 + 0.03 to the one at T0 + 0.09.
    np.testing.assert_allclose(source.cam_to_world[1, :3, 3], [1.0, 2.0, 0.05 * 3.0], atol=1e-3)


def test_tum_default_intrinsics_warn(tmp_path: Path):
    folder = tmp_path / "my_capture"
    write_tum(folder, [gt_line(T0 + 0.01 * i, (0, 0, 0), 0) for i in range(8)])
    with pytest.warns(UserWarning, match="ROS default"):
        source = read_tum(folder)
    np.testing.assert_allclose(source.intrinsics[0, :2], [[525, 0, 319.5], [0, 525, 239.5]])
    with pytest.warns(UserWarning, match="my_capture"):
        assert len(open_sources("tum", tmp_path)) == 1


def test_tum_malformed_and_missing(tum: Path):
    lines = (tum / "groundtruth.txt").read_text().splitlines()
    lines[4] = " ".join(lines[4].split()[:7])
    (tum / "groundtruth.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=r"groundtruth.txt line 5: expected 'timestamp tx ty tz qx qy qz qw'"):
        read_tum(tum)
    (tum / "depth.txt").unlink()
    with pytest.raises(DatasetError, match=r"depth.txt: missing"):
        read_tum(tum)


def test_tum_listed_file_missing(tum: Path):
    first_rgb = (tum / "rgb.txt").read_text().splitlines()[3].split()[1]
    (tum / first_rgb).unlink()
    with pytest.raises(DatasetError, match=rf"{first_rgb}: missing"):
        read_tum(tum)


# ----------------------------------------------------------------------------------------------
# ScanNet (SensReader export): JPG colour at another resolution, depth intrinsics, -inf poses


@pytest.fixture()
def scannet(tmp_path: Path) -> tuple[Path, list[np.ndarray]]:
    scene = tmp_path / "scans" / "scene0000_00"
    rng = np.random.default_rng(1)
    poses = [random_pose(rng), np.full((4, 4), -np.inf), random_pose(rng)]
    for index, pose in enumerate(poses):
        write_color(scene / "color" / f"{index}.jpg", (200, 100, 50), (97, 130))  # ~1296x968 / 10
        write_depth(scene / "depth" / f"{index}.png", np.full((48, 64), 1234))
        (scene / "pose" / f"{index}.txt").parent.mkdir(parents=True, exist_ok=True)
        (scene / "pose" / f"{index}.txt").write_text(matrix_lines(pose))
    (scene / "intrinsic").mkdir()
    k_depth = np.array([[57.7, 0, 31.9, 0], [0, 57.8, 24.1, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    (scene / "intrinsic" / "intrinsic_depth.txt").write_text(matrix_lines(k_depth))
    (scene / "intrinsic" / "intrinsic_color.txt").write_text(matrix_lines(k_depth * [[2, 2, 2, 1]] * 1.0))
    return scene, poses


def test_scannet_resizes_colour_to_depth_and_skips_invalid_poses(scannet):
    scene, poses = scannet
    source = read_scannet(scene)
    assert source.name == "scannet/scene0000_00" and len(source) == 2
    np.testing.assert_allclose(source.cam_to_world, np.stack([poses[0], poses[2]]), atol=1e-8)
    np.testing.assert_allclose(source.intrinsics[1], [[57.7, 0, 31.9], [0, 57.8, 24.1], [0, 0, 1]])
    frames = source.load([0, 1])
    assert frames.images.shape == (2, 48, 64, 3) and source.image_hw(1) == (48, 64)
    assert abs(int(frames.images[0, 20, 20, 0]) - 200) < 8  # JPEG, resized: roughly the colour written
    np.testing.assert_allclose(frames.depth[:, 5, 5], [1.234, 1.234], rtol=1e-6)
    assert len(open_sources("scannet", scene.parent)) == 1


def test_scannet_errors(scannet):
    scene, _ = scannet
    (scene / "pose" / "2.txt").write_text("1 0 0 0\n0 1 0 0\n0 0 1 0\n")
    with pytest.raises(DatasetError, match=r"pose/2.txt: expected 4 lines of 4 numbers"):
        read_scannet(scene)
    (scene / "intrinsic" / "intrinsic_depth.txt").unlink()
    (scene / "pose" / "2.txt").write_text(matrix_lines(np.eye(4)))
    with pytest.raises(DatasetError, match=r"intrinsic_depth.txt: missing"):
        read_scannet(scene)


def test_scannet_all_poses_invalid(scannet):
    scene, _ = scannet
    for index in (0, 2):
        (scene / "pose" / f"{index}.txt").write_text(matrix_lines(np.full((4, 4), np.nan)))
    with pytest.raises(DatasetError, match=r"scene0000_00: no frame has a finite camera pose"):
        read_scannet(scene)


# ----------------------------------------------------------------------------------------------
# Dispatch


def test_open_sources_errors(tmp_path: Path):
    with pytest.raises(ValueError, match="unknown dataset kind 'kitti'"):
        open_sources("kitti", tmp_path)
    with pytest.raises(ValueError, match="SyntheticWindows"):
        open_sources("synthetic", tmp_path)
    with pytest.raises(DatasetError, match="expected a NRGBD scene folder"):
        open_sources("nrgbd", tmp_path)
    with pytest.raises(DatasetError, match="nowhere: missing"):
        open_sources("tum", tmp_path / "nowhere")
