"""The moe3d sequence format: exact round trip of a synthetic sequence, optional masks, clear errors."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from moe3d_ros.data.generic import read_sequence, write_sequence
from moe3d_ros.data.readers import open_sources
from moe3d_ros.data.sequence import RGBDSequence
from moe3d_ros.data.sources import DatasetError, InMemorySource
from moe3d_ros.data.synthetic import generate_sequence
from moe3d_ros.data.windows import WindowSampler


@pytest.fixture(scope="module")
def sequence() -> RGBDSequence:
    return generate_sequence(2, 3)


@pytest.fixture()
def written(sequence: RGBDSequence, tmp_path: Path) -> Path:
    return write_sequence(sequence, tmp_path / "seq")


def test_round_trip_is_exact_up_to_depth_quantisation(sequence: RGBDSequence, written: Path):
    source = read_sequence(written)
    assert source.name == sequence.name and len(source) == len(sequence)
    assert source.image_hw(0) == sequence.depth.shape[1:]
    np.testing.assert_allclose(source.cam_to_world, sequence.cam_to_world, rtol=0, atol=1e-9)
    np.testing.assert_allclose(source.intrinsics, sequence.intrinsics, rtol=0, atol=1e-9)
    loaded = source.load(range(len(sequence)))
    np.testing.assert_array_equal(loaded.images, sequence.images)
    np.testing.assert_array_equal(loaded.valid, sequence.valid)
    error = np.abs(loaded.depth - sequence.depth)[sequence.valid]
    assert error.max() <= 0.0005 + 1e-6  # 1 mm steps: at most half a step off
    assert np.all(loaded.depth[~loaded.valid] == 0)
    assert not (written / "valid").exists()  # depth > 0 carries validity here


def test_layout_and_metadata(sequence: RGBDSequence, written: Path):
    meta = json.loads((written / "sequence.json").read_text())
    assert meta == {"format": "moe3d_sequence", "version": 1, "depth_scale": 1000.0, "num_frames": 3, "name": sequence.name}
    depth = cv2.imread(str(written / "depth" / "000001.png"), cv2.IMREAD_UNCHANGED)
    assert depth.dtype == np.uint16 and depth.shape == sequence.depth.shape[1:]
    assert len((written / "poses.txt").read_text().splitlines()) == 3
    assert [len(line.split()) for line in (written / "intrinsics.txt").read_text().splitlines()] == [4, 4, 4]


def test_load_reads_selected_frames_in_order(sequence: RGBDSequence, written: Path):
    loaded = read_sequence(written).load([2, 0])
    np.testing.assert_array_equal(loaded.images, sequence.images[[2, 0]])
    np.testing.assert_allclose(loaded.cam_to_world, sequence.cam_to_world[[2, 0]], atol=1e-9)


def test_jpg_images_and_a_shared_intrinsics_line(sequence: RGBDSequence, written: Path):
    image = cv2.imread(str(written / "rgb" / "000001.png"))
    (written / "rgb" / "000001.png").unlink()
    cv2.imwrite(str(written / "rgb" / "000001.jpg"), image)
    lines = (written / "intrinsics.txt").read_text().splitlines()
    (written / "intrinsics.txt").write_text(lines[0] + "\n")
    loaded = read_sequence(written).load([1])
    assert np.abs(loaded.images[0].astype(int) - sequence.images[1]).mean() < 10  # lossy, but the same picture
    np.testing.assert_allclose(loaded.intrinsics[0], sequence.intrinsics[0], atol=1e-9)


def test_valid_masks_are_written_when_depth_cannot_carry_validity(sequence: RGBDSequence, tmp_path: Path):
    depth = sequence.depth.copy()
    depth[0, 5, 5] = 0.0002  # valid, but rounds to 0 mm
    valid = sequence.valid.copy()
    valid[0, 5, 5] = True
    tricky = RGBDSequence(sequence.name, sequence.images, depth, valid, sequence.intrinsics, sequence.cam_to_world)
    folder = write_sequence(tricky, tmp_path / "masked")
    assert (folder / "valid" / "000002.png").is_file()
    np.testing.assert_array_equal(read_sequence(folder).load([0, 1, 2]).valid, valid)


def test_depth_scale_is_honoured(sequence: RGBDSequence, tmp_path: Path):
    folder = write_sequence(sequence, tmp_path / "fine", depth_scale=5000.0)
    loaded = read_sequence(folder).load([0])
    assert np.abs(loaded.depth[0] - sequence.depth[0])[sequence.valid[0]].max() <= 0.0001 + 1e-6
    with pytest.raises(ValueError, match="smaller depth_scale"):
        write_sequence(sequence, tmp_path / "coarse", depth_scale=1e5)  # metres x 1e5 overflows 16 bits


def test_open_sources_finds_sequence_folders(sequence: RGBDSequence, tmp_path: Path):
    for name in ("a", "b"):
        write_sequence(sequence, tmp_path / "root" / name)
    (tmp_path / "root" / "not_a_sequence").mkdir()
    assert len(open_sources("moe3d", tmp_path / "root")) == 2
    assert len(open_sources("moe3d", tmp_path / "root" / "a")) == 1


def test_a_read_sequence_feeds_the_window_sampler(written: Path):
    sampler = WindowSampler([read_sequence(written)], window_size=2, target_width=112)
    window = sampler.window(0)
    assert window.images.shape == (2, 3, 84, 112) and window.valid.any()


def test_in_memory_source_matches_the_sequence(sequence: RGBDSequence):
    source = InMemorySource(sequence)
    assert len(source) == 3 and source.image_hw(2) == (168, 224)
    np.testing.assert_array_equal(source.load([1]).depth, sequence.depth[[1]])
    with pytest.raises(IndexError, match="frame 3"):
        source.load([3])


def test_missing_metadata(tmp_path: Path):
    with pytest.raises(DatasetError, match="sequence.json: missing"):
        read_sequence(tmp_path)


def test_wrong_format_name(written: Path):
    (written / "sequence.json").write_text(json.dumps({"format": "other", "version": 1, "num_frames": 3}))
    with pytest.raises(DatasetError, match="sequence.json.*moe3d_sequence"):
        read_sequence(written)


def test_pose_count_mismatch(written: Path):
    lines = (written / "poses.txt").read_text().splitlines()
    (written / "poses.txt").write_text("\n".join(lines[:2]) + "\n")
    with pytest.raises(DatasetError, match=r"poses.txt: expected 3 poses"):
        read_sequence(written)


def test_malformed_pose_line(written: Path):
    lines = (written / "poses.txt").read_text().splitlines()
    lines[1] = "1 0 0 0 0 1 0 0 0 0 1 0"
    (written / "poses.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=r"poses.txt line 2: expected 16 numbers"):
        read_sequence(written)


def test_transposed_pose_is_caught(written: Path):
    lines = (written / "poses.txt").read_text().splitlines()
    matrix = np.array(lines[0].split(), dtype=float).reshape(4, 4)
    lines[0] = " ".join(str(float(v)) for v in matrix.T.ravel())
    (written / "poses.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=r"poses.txt pose 0: last row must be 0 0 0 1"):
        read_sequence(written)


def test_missing_frame_image(written: Path):
    (written / "rgb" / "000001.png").unlink()
    with pytest.raises(DatasetError, match=r"rgb/000001.png: missing"):
        read_sequence(written)


def test_depth_that_is_not_16_bit(written: Path):
    cv2.imwrite(str(written / "depth" / "000002.png"), np.zeros((168, 224), np.uint8))
    with pytest.raises(DatasetError, match=r"depth/000002.png: expected a single-channel 16-bit depth PNG"):
        read_sequence(written).load([2])
