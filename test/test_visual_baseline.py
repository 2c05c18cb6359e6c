"""The camera's translation from two images and the first one's depth (outputs.visual_baseline):
with exact depth it is the true baseline, in the depth's unit; without texture it is refused."""
from __future__ import annotations

import numpy as np
import pytest

from moe3d_ros.data.synthetic import SyntheticConfig, generate_sequence
from moe3d_ros.outputs.scale import ScaleRefused
from moe3d_ros.outputs.visual_baseline import visual_baseline, visual_log_ratios


def test_exact_depth_gives_the_true_baseline_in_the_depths_unit():
    seq = generate_sequence(900_001, 3, SyntheticConfig())
    depth = np.where(seq.valid[0], seq.depth[0], np.nan)
    true = np.linalg.norm(seq.cam_to_world[1][:3, 3] - seq.cam_to_world[0][:3, 3])
    measured = visual_baseline(seq.images[0], seq.images[1], depth, seq.intrinsics[0], seq.intrinsics[1])
    assert measured is not None and measured.inliers >= 12
    assert abs(measured.length / true - 1) < 0.05, (measured, true)
    halved = visual_baseline(seq.images[0], seq.images[1], depth / 2, seq.intrinsics[0], seq.intrinsics[1])
    assert abs(halved.length / measured.length - 0.5) < 0.02  # the unit of the depth is the unit of the baseline
    metric = [seq.cam_to_world[i][:3, 3] for i in range(3)]
    ratios = visual_log_ratios(list(seq.images), [np.where(v, d, np.nan) * 0.25 for d, v in zip(seq.depth, seq.valid)],
                               list(seq.intrinsics), metric, min_baseline=0.05)
    assert len(ratios) >= 2 and abs(np.median(ratios) - np.log(4.0)) < 0.05  # metres per unit of depth / 4


def test_a_blank_image_gives_no_baseline():
    blank = np.full((120, 160, 3), 128, np.uint8)
    k = np.array([[100.0, 0, 79.5], [0, 100.0, 59.5], [0, 0, 1]])
    assert visual_baseline(blank, blank, np.ones((120, 160)), k, k) is None
    with pytest.raises(ScaleRefused, match="feature tracks"):
        visual_log_ratios([blank, blank], [np.ones((120, 160))] * 2, [k, k], [np.zeros(3), np.ones(3)], 0.1)
