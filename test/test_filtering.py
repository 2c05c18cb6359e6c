"""Boundary-clean filter on constructed depth maps (no ROS)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from moe3d_ros.outputs.filtering import FilterConfig, between_mask, boundary_clean_mask, edge_mask

OFF = dict(min_confidence=0.0, max_gate_entropy=math.inf, max_edge_jump=math.inf)


def test_depth_edge_removes_both_sides_of_a_step_only():
    depth = np.full((4, 6), 2.0, np.float32)
    depth[:, 3:] = 4.0  # a step between columns 2 and 3
    jump = edge_mask(depth, 0.05)
    assert jump[:, 2].all() and jump[:, 3].all()
    assert not jump[:, [0, 1, 4, 5]].any()
    # A smooth ramp of 1% per pixel is kept.
    ramp = np.tile(np.linspace(1.0, 1.05, 6, dtype=np.float32), (4, 1))
    assert not edge_mask(ramp, 0.05).any()


def test_between_keeps_a_clean_step_and_drops_only_the_blend():
    depth = np.full((4, 7), 2.0, np.float32)
    depth[:, 4:] = 4.0  # a clean step between columns 3 and 4: both sides are surface points
    assert not between_mask(depth, 0.05).any()
    blended = depth.copy()
    blended[:, 3] = 3.0  # one pixel between the surfaces: a flying pixel
    np.testing.assert_array_equal(between_mask(blended, 0.05), np.tile([0, 0, 0, 1, 0, 0, 0], (4, 1)).astype(bool))
    near_side = depth.copy()
    near_side[:, 3] = 2.08  # 4% above its near neighbours: on the near surface
    assert not between_mask(near_side, 0.05).any()
    blended[1, 3] = np.nan  # invalid pixels are neither removed by it nor a neighbour of anything
    assert not between_mask(blended, 0.05)[1, 3] and between_mask(blended, 0.05)[[0, 2, 3], 3].all()
    cfg = FilterConfig(**{**OFF, "max_edge_jump": 0.05, "edge_test": "between"})
    result = boundary_clean_mask(depth, np.ones_like(depth), cfg)
    assert result.mask.all() and result.counts["depth_edge"] == 0
    assert boundary_clean_mask(depth, np.ones_like(depth), FilterConfig(**{**OFF, "max_edge_jump": 0.05})).counts["depth_edge"] == 8
    with pytest.raises(ValueError, match="edge_test 'both': use one of jump, between"):
        FilterConfig(edge_test="both")


def test_each_test_and_its_count():
    depth = np.array([[1.0, 1.0, 1.0], [1.0, np.nan, 9.0]], np.float32)
    confidence = np.array([[5.0, 1.1, 5.0], [5.0, 5.0, 5.0]], np.float32)
    entropy = np.array([[0.0, 0.0, 1.2], [0.0, 0.0, 0.0]], np.float32)
    cfg = FilterConfig(min_confidence=1.5, max_gate_entropy=0.5, max_edge_jump=math.inf, max_depth=5.0)
    result = boundary_clean_mask(depth, confidence, cfg, entropy)
    expected = np.array([[True, False, False], [True, False, False]])
    np.testing.assert_array_equal(result.mask, expected)
    assert result.counts == {"invalid": 1, "confidence": 1, "gate_entropy": 1, "depth_edge": 0, "range": 1}


def test_an_undecided_gate_drops_a_pixel_only_where_the_experts_disagree():
    depth = np.ones((2, 3), np.float32)
    entropy = np.array([[1.3, 1.3, 1.3], [0.1, 0.1, 0.1]], np.float32)
    spread = np.array([[0.01, 0.2, 0.06], [0.2, 0.2, 0.2]], np.float32)  # max / min expert depth - 1
    cfg = FilterConfig(min_confidence=0.0, max_gate_entropy=0.5, min_expert_spread=0.05, max_edge_jump=math.inf)
    result = boundary_clean_mask(depth, np.ones_like(depth), cfg, entropy, spread)
    np.testing.assert_array_equal(result.mask, [[True, False, False], [True, True, True]])
    assert result.counts["gate_entropy"] == 2


def test_switched_off_tests_keep_everything_finite():
    rng = np.random.default_rng(0)
    depth = rng.uniform(0.5, 10, (8, 8)).astype(np.float32)
    result = boundary_clean_mask(depth, np.ones_like(depth), FilterConfig(**OFF), rng.uniform(0, 2, (8, 8)))
    assert result.mask.all()


def test_no_gate_entropy_for_a_plain_dpt_head():
    depth = np.ones((3, 3), np.float32)
    result = boundary_clean_mask(depth, np.full_like(depth, 2.0), FilterConfig(), None)
    assert result.mask.all() and result.counts["gate_entropy"] == 0


@pytest.mark.parametrize("bad", [dict(min_confidence=-1), dict(max_edge_jump=-0.1), dict(min_expert_spread=-0.1),
                                 dict(min_depth=5, max_depth=1)])
def test_bad_settings_are_errors(bad):
    with pytest.raises(ValueError):
        FilterConfig(**bad)


def test_rep117_out_of_range_is_signed_infinity_and_other_removals_nan():
    """REP-117: -Inf nearer than min_depth, +Inf beyond max_depth, so consumers may clear free
    space; a pixel that also fails another test is unknown (NaN), as is an invalid one."""
    depth = np.array([[0.2, 1.0, 9.0], [9.0, np.nan, 0.2]], np.float32)
    confidence = np.array([[5.0, 5.0, 5.0], [1.0, 5.0, 1.0]], np.float32)
    cfg = FilterConfig(min_confidence=1.5, max_edge_jump=math.inf, min_depth=0.5, max_depth=5.0)
    result = boundary_clean_mask(depth, confidence, cfg)
    published = result.published(depth)
    np.testing.assert_array_equal(published[0], [-np.inf, 1.0, np.inf])
    assert np.isnan(published[1]).all()
    assert result.counts["range"] == 4
