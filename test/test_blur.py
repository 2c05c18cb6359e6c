"""Blur as a protocol condition: Gaussian and motion blur of the input images, ground truth untouched."""
from __future__ import annotations

import json

import numpy as np
import pytest

from moe3d_ros.data.blur import BlurCondition, gaussian_blur, image_motion, motion_blur
from moe3d_ros.data.sequence import RGBDSequence
from moe3d_ros.data.synthetic import SyntheticConfig, generate_sequence


def _edge_width(row: np.ndarray) -> int:
    """Pixels strictly between the dark and the bright level of a step profile."""
    return int(((row > 20) & (row < 235)).sum())


def test_gaussian_blur_widens_a_step_by_its_sigma_and_keeps_flat_regions():
    image = np.zeros((21, 40, 3), np.uint8)
    image[:, 20:] = 255
    widths = [_edge_width(gaussian_blur(image, sigma)[10, :, 0].astype(float)) for sigma in (0.0, 1.0, 2.0)]
    assert widths[0] == 0 < widths[1] < widths[2]
    assert gaussian_blur(image, 2.0)[10, 0, 0] == 0 and gaussian_blur(image, 2.0)[10, -1, 0] == 255


def _translating_pair(shift_x: float) -> RGBDSequence:
    """A textured plane at 2 m seen by a camera that moves sideways: every pixel moves alike."""
    height, width, focal = 24, 48, 40.0
    k = np.array([[focal, 0, (width - 1) / 2], [0, focal, (height - 1) / 2], [0, 0, 1.0]])
    image = np.zeros((height, width, 3), np.uint8)
    image[:, ::8] = 255  # thin vertical stripes
    poses = np.repeat(np.eye(4)[None], 2, axis=0)
    poses[1, 0, 3] = shift_x
    return RGBDSequence("pair", np.stack([image, image]), np.full((2, height, width), 2.0, np.float32),
                        np.ones((2, height, width), bool), np.repeat(k[None], 2, axis=0), poses)


def test_image_motion_of_a_sideways_camera_is_the_disparity():
    seq = _translating_pair(0.1)  # 0.1 m at 2 m with f = 40 px: the scene moves 2 px left in frame 1
    motion = image_motion(seq, 0)
    np.testing.assert_allclose(motion[..., 0], -2.0, atol=1e-9)
    np.testing.assert_allclose(motion[..., 1], 0.0, atol=1e-9)
    np.testing.assert_allclose(image_motion(seq, 1)[..., 0], -2.0, atol=1e-9)  # the last frame: away from the one before


def test_motion_blur_smears_along_the_motion_only():
    seq = _translating_pair(0.1)
    blurred = motion_blur(seq.images[0], image_motion(seq, 0), 4.0, seq.valid[0])
    stripes = seq.images[0][..., 0].astype(float)
    # Horizontal motion smears the vertical stripes sideways, and keeps each column's values in rows.
    assert blurred[..., 0].astype(float).std() < 0.7 * stripes.std()
    np.testing.assert_array_equal(blurred[0], blurred[12])


def test_blur_condition_changes_images_only():
    seq = generate_sequence(900_000, 2, SyntheticConfig(height=42, width=56))
    out = BlurCondition(sigma=1.0, motion=3.0).apply(seq)
    assert not np.array_equal(out.images, seq.images)
    for name in ("depth", "valid", "intrinsics", "cam_to_world"):
        np.testing.assert_array_equal(getattr(out, name), getattr(seq, name))
    assert BlurCondition().apply(seq) is seq
    assert BlurCondition(sigma=2, motion=1).describe() == "motion blur 1 px, Gaussian blur 2 px"
    with pytest.raises(ValueError, match=">= 0"):
        BlurCondition(sigma=-1)
    with pytest.raises(ValueError, match="two frames"):
        BlurCondition(motion=2).apply(seq.select([0]))


def test_eval_reports_the_blur_condition_and_the_oracle_and_refuses_motion_blur_on_single_images(tmp_path, capsys):
    """One evaluation run: the condition in the results, and --oracle's pick (per pixel the
    hypothesis nearest the truth), which can only be nearer than the winner's."""
    from moe3d_ros.cli.eval import main

    out = tmp_path / "blurred"
    assert main(["--protocol", "synthetic", "--scenes", "1", "--frames", "2", "--figures", "0", "--blur", "2",
                 "--motion-blur", "1", "--oracle", "--threads", "2", "--out", str(out)]) == 0
    result = json.loads((out / "results.json").read_text())
    assert result["meta"]["condition"] == "motion blur 1 px, Gaussian blur 2 px"
    assert result["summary"]["moe_oracle"]["abs_rel"] <= result["summary"]["moe_winner"]["abs_rel"] + 1e-9
    assert "condition: motion blur 1 px, Gaussian blur 2 px" in (out / "report.md").read_text()
    with pytest.raises(SystemExit):
        main(["--protocol", "nyu", "--data-root", str(tmp_path), "--motion-blur", "2"])
    assert "single images" in capsys.readouterr().err

