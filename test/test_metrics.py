"""Evaluation metrics against values derived by hand on small constructed scenes."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from moe3d_ros.eval.metrics import (
    BOUNDARY_THRESHOLDS,
    boundary_f1,
    boundary_scores,
    depth_edge_f1,
    depth_metrics,
    discontinuity_band,
    fit_scale,
    flying_points,
    gate_switches_off_edges,
    mixed_own_surface_ratio,
    mixed_pixel_ratio,
    published_edge_scores,
    steps_off_edges,
)
from moe3d_ros.eval.reconstruction import (
    estimate_normals,
    icp_point_to_point,
    reconstruction_metrics,
    surface_metrics,
    umeyama,
)

# ----------------------------------------------------------------------------- depth


def test_prediction_twice_the_truth_scales_back_exactly():
    gt = np.random.default_rng(0).uniform(0.5, 10.0, size=(6, 7))
    for method in ("median", "l1"):
        m = depth_metrics(2 * gt, gt, scale_method=method)
        assert m["scale"] == pytest.approx(0.5)
        assert m["abs_rel"] == pytest.approx(0.0, abs=1e-12)
        assert m["rmse"] == pytest.approx(0.0, abs=1e-12)
        assert m["delta1"] == 1.0 and m["num_valid"] == 42


def test_depth_metrics_known_perturbation():
    gt = np.array([[1.0, 2.0, 4.0, 5.0]])
    pred = np.array([[1.0, 2.0, 4.4, 3.5]])
    # gt/pred = 1, 1, 0.909, 1.43 -> median 1 (mean of the middle two).
    m = depth_metrics(pred, gt)
    assert m["scale"] == pytest.approx(1.0)
    assert m["abs_rel"] == pytest.approx((0 + 0 + 0.4 / 4 + 1.5 / 5) / 4)  # 0.1
    assert m["rmse"] == pytest.approx(math.sqrt((0.4**2 + 1.5**2) / 4))
    # max ratios 1, 1, 1.1, 1.43: only the last fails 1.25, all pass 1.5625.
    assert (m["delta1"], m["delta2"], m["delta3"]) == (0.75, 1.0, 1.0)


def test_invalid_nan_and_non_positive_pixels_are_excluded():
    gt = np.array([[1.0, 2.0, np.nan, 3.0, 0.0, 5.0]])
    pred = np.array([[1.0, 2.0, 7.0, -1.0, 4.0, 9.0]])
    valid = np.array([[True, True, True, True, True, False]])
    m = depth_metrics(pred, gt, valid)
    assert m["num_valid"] == 2 and m["abs_rel"] == 0.0


def test_sintel_cap_masks_far_truth_and_clips_prediction():
    gt = np.array([[10.0, 60.0, 65.0, 80.0]])
    pred = np.array([[10.0, 60.0, 90.0, 5.0]])
    # 80 m is masked; ratios 1, 1, 0.72 -> scale 1; 90 is clipped to 70: errors 0, 0, 5 m.
    m = depth_metrics(pred, gt, max_depth=70.0)
    assert m["num_valid"] == 3 and m["scale"] == pytest.approx(1.0)
    assert m["abs_rel"] == pytest.approx((5 / 65) / 3)
    assert m["rmse"] == pytest.approx(math.sqrt(25 / 3))


def test_fit_scale_median_and_weighted_median_l1():
    pred = np.array([1.0, 1.0, 4.0])
    gt = np.array([3.0, 2.0, 4.0])
    # Ratios gt/pred = 3, 2, 1: median 2.
    assert fit_scale(pred, gt, method="median") == pytest.approx(2.0)
    # L1: f(s) = |s - 3| + |s - 2| + 4 |s - 1|; right of s = 1 the slope is 4 - 1 - 1 = +2 > 0,
    # left of it -6: minimum at s = 1, the median of the ratios weighted by pred (weights 1, 1, 4).
    assert fit_scale(pred, gt, method="l1") == pytest.approx(1.0)
    grid = np.linspace(0.0, 4.0, 4001)
    objective = np.abs(grid[:, None] * pred - gt).sum(axis=1)
    assert grid[objective.argmin()] == pytest.approx(1.0)


def test_depth_metrics_accept_torch_tensors():
    gt = torch.rand(5, 5) + 1
    assert depth_metrics(gt * 3, gt, gt > 0)["scale"] == pytest.approx(1 / 3, rel=1e-6)


# ----------------------------------------------------------------------------- boundaries


def square_scene(inside: float = 1.0, outside: float = 2.0, shift: int = 0) -> np.ndarray:
    """12 x 12 background at `outside` with a 4 x 4 square (rows 4-7, cols 4-7, + shift) at `inside`:
    4 contour pairs in each of the 4 directions."""
    depth = np.full((12, 12), outside)
    depth[4:8, 4 + shift:8 + shift] = inside
    return depth


def test_exact_prediction_scores_one_at_every_threshold_and_is_scale_invariant():
    gt = square_scene()
    scores = boundary_scores(gt, gt)
    np.testing.assert_allclose(scores["f1"], 1.0)
    assert boundary_f1(gt, gt) == pytest.approx(1.0)
    assert boundary_f1(3.7 * gt, gt) == pytest.approx(1.0)
    shifted = square_scene(shift=1)
    assert boundary_f1(3.7 * shifted, gt) == pytest.approx(boundary_f1(shifted, gt))


def test_single_straight_edge_scores_a_quarter_as_in_depth_pro():
    gt = np.ones((6, 8))
    gt[:, 4:] = 2.0
    # Only one direction (left pixel nearer) has contours; the three empty directions score 0:
    # p = r = 0.25 * (1 + 0 + 0 + 0) = 0.25 and F1 = 0.25 at every threshold.
    np.testing.assert_allclose(boundary_scores(gt, gt)["f1"], 0.25)


def test_edge_shifted_by_one_column():
    gt, pred = square_scene(), square_scene(shift=1)
    # Horizontal pairs sit at columns (3,4)/(7,8) in gt and (4,5)/(8,9) in pred: no overlap, p = r = 0.
    # Vertical pairs cover columns 4-7 in gt and 5-8 in pred: 3 of 4 shared, p = r = 3/4 in each.
    # p = r = 0.25 * (0 + 0 + 0.75 + 0.75) = 0.375, so F1 = 0.375 at every threshold.
    scores = boundary_scores(pred, gt)
    np.testing.assert_allclose(scores["precision"], 0.375)
    np.testing.assert_allclose(scores["recall"], 0.375)
    assert scores["boundary_f1"] == pytest.approx(0.375)


def test_prediction_without_edges_scores_zero():
    assert boundary_f1(np.full((12, 12), 1.5), square_scene()) == 0.0
    assert boundary_scores(np.full((12, 12), 1.5), square_scene())["boundary_recall"] == 0.0


def test_extra_predicted_edges_cost_precision_not_recall():
    gt = square_scene()
    pred = gt.copy()
    pred[1:3, 8:11] = 1.5  # a 2 x 3 patch with inverse-depth ratio 2 / 1.5 = 1.33 > 1.25
    # Horizontal directions: 4 true + 2 extra pairs -> p = 4/6; vertical: 4 + 3 -> p = 4/7.
    # p = 0.25 * (2/3 + 2/3 + 4/7 + 4/7) = 13/21, r = 1, F1 = 2 p / (p + 1) = 13/17.
    assert boundary_scores(pred, gt)["boundary_recall"] == pytest.approx(1.0)
    assert boundary_scores(pred, gt)["boundary_precision"] == pytest.approx(13 / 21)
    assert boundary_f1(pred, gt) == pytest.approx(13 / 17)


def test_weak_edge_counts_only_below_its_ratio():
    gt = square_scene(inside=1.0, outside=1.15)
    # t_i = 1.05 + i * 0.2 / 9: t_0..t_4 (up to 1.139) < 1.15 score F1 = 1, t_5.. (from 1.161) score 0
    # (no contour in either map). Weighted: sum(t_0..t_4) / sum(t) = (5.25 + 0.2/9 * 10) / 11.5.
    expected = (5.25 + 2.0 / 9.0) / 11.5
    assert expected == pytest.approx(BOUNDARY_THRESHOLDS[:5].sum() / BOUNDARY_THRESHOLDS.sum())
    np.testing.assert_allclose(boundary_scores(gt, gt)["f1"], [1.0] * 5 + [0.0] * 5)
    assert boundary_f1(gt, gt) == pytest.approx(expected)


def test_pairs_touching_invalid_truth_are_ignored():
    gt = square_scene()
    pred = gt.copy()
    gt[0:2, 0:3] = 0.0  # missing ground truth: 1/eps would otherwise make spurious contours
    assert boundary_f1(pred, gt) == pytest.approx(1.0)
    valid = np.ones_like(gt, dtype=bool)
    valid[:, 9:] = False
    pred[:, 10] = 1.0  # false contours at pairs (9, 10) and (10, 11), inside the invalid region: not counted
    assert boundary_f1(pred, gt, valid) == pytest.approx(1.0)


# ----------------------------------------------------------------------------- flying points

FOCAL, H, W = 10.0, 10, 20
K = np.array([[FOCAL, 0.0, (W - 1) / 2], [0.0, FOCAL, (H - 1) / 2], [0.0, 0.0, 1.0]])


def step_scene() -> np.ndarray:
    """Fronto-parallel planes: depth 1 m in columns 0-9, 2 m in columns 10-19."""
    depth = np.ones((H, W))
    depth[:, 10:] = 2.0
    return depth


def test_discontinuity_band_width():
    gt = step_scene()
    # Contour pixels are columns 9 and 10; width 3 grows them by 2: columns 7-12.
    band = discontinuity_band(gt, width=3)
    assert band[:, 7:13].all() and band.sum() == 6 * H
    assert np.array_equal(np.flatnonzero(discontinuity_band(gt, width=1)[0]), [9, 10])
    valid = np.ones_like(gt, dtype=bool)
    valid[:, 11] = False
    assert not discontinuity_band(gt, valid)[:, 11].any()


def test_gate_switches_on_the_edge_are_not_off_edge_and_switches_on_a_surface_are():
    gt = step_scene()  # depth steps between columns 9 and 10
    on_edge = np.zeros(gt.shape, dtype=np.uint8)
    on_edge[:, 10:] = 1
    assert gate_switches_off_edges(on_edge, gt) == 0.0
    on_surface = np.zeros(gt.shape, dtype=np.uint8)
    on_surface[:, 16:] = 1  # 6 px behind the step: outside the 3-px band
    assert gate_switches_off_edges(on_surface, gt) == 1.0
    both = on_edge.copy()
    both[:, 16:] = 2
    assert gate_switches_off_edges(both, gt) == pytest.approx(0.5)
    assert gate_switches_off_edges(both, gt, band=discontinuity_band(gt)) == pytest.approx(0.5)  # band given
    assert math.isnan(gate_switches_off_edges(np.zeros(gt.shape, dtype=np.uint8), gt))
    invalid = np.ones(gt.shape, dtype=bool)
    invalid[:, 16] = False  # a switch next to missing ground truth is not scored
    assert math.isnan(gate_switches_off_edges(on_surface, gt, invalid))


def test_depth_steps_on_the_edge_are_true_and_steps_on_a_surface_are_false():
    gt = step_scene()  # depth steps between columns 9 and 10
    assert steps_off_edges(gt, gt) == 0.0  # the truth's own steps all lie on its edges
    assert steps_off_edges(2.5 * gt, gt) == 0.0  # scale-free
    false_step = gt.copy()
    false_step[:, 16:] *= 1.12  # a 12% step 6 px behind the edge, outside the 3-px band
    assert steps_off_edges(false_step, gt) == pytest.approx(0.5)  # two pixels of each pair, two pairs per row
    agreeing = gt.copy()
    agreeing[:, 16:] *= 1.08  # below the ratio of a ground-truth discontinuity: no step
    assert steps_off_edges(agreeing, gt) == 0.0
    assert math.isnan(steps_off_edges(np.full(gt.shape, 3.0), gt))  # flat: no step at all
    invalid = np.ones(gt.shape, dtype=bool)
    invalid[:, 16] = False  # a step next to missing ground truth is not scored
    assert steps_off_edges(false_step, gt, invalid) == 0.0


def vertical_edge(near: float = 1.0, far: float = 2.0) -> np.ndarray:
    """16 x 16: columns 0-7 at `near`, 8-15 at `far`."""
    depth = np.full((16, 16), far)
    depth[:, :8] = near
    return depth


def test_mixed_pixels_are_blends_of_the_two_sides_not_misplaced_steps():
    gt = vertical_edge()
    assert mixed_pixel_ratio(gt, gt) == 0.0
    # The band: columns 6-9 (within 2 px of the step between 7 and 8), 64 pixels. Columns 7 and 8
    # at 1.5 are more than 5% from 1 and from 2: 32 mixed pixels.
    blended = gt.copy()
    blended[:, 7:9] = 1.5
    assert mixed_pixel_ratio(blended, gt) == pytest.approx(0.5)
    assert mixed_pixel_ratio(3.7 * blended, gt) == pytest.approx(0.5)  # after the median scale fit
    # Within 5% of a side is that side; a step one pixel off is wrong but not mixed.
    near_side = gt.copy()
    near_side[:, 7:9] = 1.04
    assert mixed_pixel_ratio(near_side, gt) == 0.0
    shifted = gt.copy()
    shifted[:, 7] = 2.0
    assert mixed_pixel_ratio(shifted, gt) == 0.0
    # Outside the band, or beyond the far side, nothing is mixed.
    outside = gt.copy()
    outside[:, 0:3] = 1.5
    outside[:, 9] = 2.5
    assert mixed_pixel_ratio(outside, gt) == 0.0


def test_mixed_own_surface_ratio_counts_blends_not_a_surface_moved_by_depth_error():
    gt = vertical_edge()
    blended = gt.copy()
    blended[:, 7:9] = 1.5  # the two columns beside the step: between the sides, on neither
    assert mixed_own_surface_ratio(gt, gt) == 0.0
    assert mixed_own_surface_ratio(blended, gt) == pytest.approx(0.5) == mixed_pixel_ratio(blended, gt)
    moved = gt.copy()
    moved[:, :8] = 1.15  # the near surface 15% too far: an error of depth, not a blend
    assert mixed_own_surface_ratio(moved, gt) == 0.0 and mixed_pixel_ratio(moved, gt) > 0.5
    assert mixed_own_surface_ratio(3.0 * blended, gt) == pytest.approx(0.5)  # no scale to fit
    assert math.isnan(mixed_own_surface_ratio(np.ones((8, 8)), np.ones((8, 8))))


def test_published_edge_scores_see_only_published_pixels():
    """An edge filter's gaps are not depth 0: a step with both sides removed keeps its edge where
    the published surfaces meet; a blend kept by a filter counts, one removed does not."""
    gt = vertical_edge()
    exact = published_edge_scores(gt, gt)
    assert exact == {"published_edge_share": 1.0, "published_mixed_ratio": 0.0, "published_boundary_f1": boundary_f1(gt, gt)}
    gap = gt.copy()
    gap[:, 7:9] = np.nan  # both sides of the step removed, as the node's depth-edge test does
    scores = published_edge_scores(gap, gt)
    assert scores["published_edge_share"] == pytest.approx(4 / 6)  # the band: columns 5-10
    assert scores["published_mixed_ratio"] == 0.0
    assert scores["published_boundary_f1"] > 0.1 > boundary_f1(np.nan_to_num(gap), gt)
    blended = gt.copy()
    blended[:, 7:9] = 1.5
    assert published_edge_scores(blended, gt)["published_mixed_ratio"] == pytest.approx(0.5)
    blended[:, 8] = np.inf  # out of range: not published either
    assert published_edge_scores(blended, gt)["published_mixed_ratio"] == pytest.approx(16 / 48)
    assert all(math.isnan(v) for v in published_edge_scores(np.full((16, 16), np.nan), gt).values())


def test_abs_rel_splits_into_a_blend_on_the_edge_and_an_offset_on_the_surface():
    gt = vertical_edge()
    band = np.zeros(gt.shape, dtype=bool)
    band[:, 6:10] = True
    blended = gt.copy()
    blended[:, 7:9] = 1.5  # |1.5 - 1| / 1 and |1.5 - 2| / 2 on 2 of the band's 4 columns
    scores = depth_metrics(blended, gt, band=band)
    assert scores["scale"] == pytest.approx(1.0)
    assert scores["abs_rel_edges"] == pytest.approx((0.5 + 0.25) / 4) and scores["abs_rel_surfaces"] == 0.0
    offset = gt.copy()
    offset[:, 12:] *= 1.1  # a surface 10% too far, away from the band
    scores = depth_metrics(2 * offset, gt, band=band)  # the image's fitted scale undoes the 2
    assert scores["scale"] == pytest.approx(0.5)
    assert scores["abs_rel_edges"] == 0.0 and scores["abs_rel_surfaces"] == pytest.approx(0.1 * 4 / 12)
    assert math.isnan(depth_metrics(gt, gt, band=np.zeros(gt.shape, dtype=bool))["abs_rel_edges"])
    assert "abs_rel_edges" not in depth_metrics(gt, gt)


def test_mixed_pixels_need_a_step_that_spans_more_than_a_quarter():
    gt = vertical_edge(far=1.2)  # a step > 1.1x but a span < 1.25x: no band
    assert math.isnan(mixed_pixel_ratio(gt * 1.1, gt))
    assert math.isnan(mixed_pixel_ratio(np.ones((8, 8)), np.ones((8, 8))))


def test_depth_edge_f1_forgives_one_pixel_and_no_more():
    gt = vertical_edge()
    assert depth_edge_f1(gt, gt) == 1.0
    one_off = gt.copy()
    one_off[:, 7] = 2.0  # the step moves one column left
    assert depth_edge_f1(one_off, gt) == 1.0
    assert boundary_f1(one_off, gt) < 0.01  # Depth Pro's exact pairs miss it
    three_off = gt.copy()
    three_off[:, 5:8] = 2.0
    assert depth_edge_f1(three_off, gt) == 0.0
    assert depth_edge_f1(np.full((16, 16), 1.5), gt) == 0.0
    assert math.isnan(depth_edge_f1(gt, np.ones((16, 16))))


def test_exact_prediction_has_no_flying_points():
    gt = step_scene()
    result = flying_points(gt, gt, None, K)
    assert result["flying_ratio"] == 0.0 and result["band_chamfer"] == pytest.approx(0.0, abs=1e-12)
    assert result["num_band_points"] == 60


def test_ramp_across_the_edge_is_flying():
    gt = step_scene()
    pred = gt.copy()
    pred[:, 9], pred[:, 10] = 4 / 3, 5 / 3  # interpolated pixels bridging the two planes
    result = flying_points(2 * pred, gt, np.ones_like(gt, dtype=bool), torch.from_numpy(K))
    # gt/pred = 1 on 180 of 200 pixels -> scale exactly 1/2. Threshold 0.02 * median gt 1.5 = 0.03 m.
    # A ramp point has depth 4/3 or 5/3, so it is >= 1/3 m from both planes: flying. The other band
    # pixels coincide with ground-truth points. Band: columns 7-12 (60 pixels), ramp: 20 of them.
    assert result["scale"] == pytest.approx(0.5)
    assert result["threshold"] == pytest.approx(0.03)
    assert result["num_flying"] == 20 and result["flying_ratio"] == pytest.approx(1 / 3)
    assert result["band_accuracy"] >= (20 / 60) * (1 / 3)
    assert result["band_chamfer"] == pytest.approx(0.5 * (result["band_accuracy"] + result["band_completeness"]))


def test_no_discontinuity_gives_nan():
    flat = np.ones((H, W))
    result = flying_points(flat, flat, None, K)
    assert result["num_band_points"] == 0 and math.isnan(result["flying_ratio"])


# ----------------------------------------------------------------------------- alignment and reconstruction


def surface(n_side: int = 40) -> np.ndarray:
    """A curved patch z = 2 + 0.3 x^2 - 0.2 y^2 on a 1 m x 1 m grid, [n_side^2, 3]."""
    x, y = np.meshgrid(np.linspace(-0.5, 0.5, n_side), np.linspace(-0.5, 0.5, n_side))
    return np.stack([x, y, 2 + 0.3 * x**2 - 0.2 * y**2], axis=-1).reshape(-1, 3)


def test_umeyama_recovers_a_similarity():
    rng = np.random.default_rng(1)
    source = rng.normal(size=(100, 3))
    rotation = Rotation.random(random_state=2).as_matrix()
    translation = np.array([0.3, -1.2, 4.0])
    target = 2.5 * source @ rotation.T + translation
    scale, r, t = umeyama(source, target)
    assert scale == pytest.approx(2.5, abs=1e-6)
    np.testing.assert_allclose(r, rotation, atol=1e-6)
    np.testing.assert_allclose(t, translation, atol=1e-6)
    assert umeyama(source, target, with_scale=False)[0] == 1.0


def test_umeyama_never_returns_a_reflection():
    source = np.random.default_rng(3).normal(size=(50, 3))
    mirrored = source * np.array([-1.0, 1.0, 1.0])
    _, rotation, _ = umeyama(source, mirrored)
    assert np.linalg.det(rotation) == pytest.approx(1.0)


def test_cloud_against_itself_is_perfect():
    points = surface()
    m = reconstruction_metrics(points, points)
    for key in ("acc_mean", "acc_median", "comp_mean", "comp_median"):
        assert m[key] == pytest.approx(0.0, abs=1e-9)
    assert m["nc_mean"] == pytest.approx(1.0) and m["nc_median"] == pytest.approx(1.0)
    np.testing.assert_allclose(m["transform"], np.eye(4), atol=1e-9)


def test_plane_normals_are_the_plane_normal():
    x, y = np.meshgrid(np.linspace(0, 1, 30), np.linspace(0, 1, 30))
    plane = np.stack([x, y, 0.5 * x - 0.25 * y + 1], axis=-1).reshape(-1, 3)
    normal = np.array([0.5, -0.25, -1.0]) / np.linalg.norm([0.5, -0.25, -1.0])
    np.testing.assert_allclose(np.abs(estimate_normals(plane) @ normal), 1.0, atol=1e-9)
    # A different sampling of the same plane: its normals agree too.
    other = plane[::2] + np.array([0.01, 0.02, 0.5 * 0.01 - 0.25 * 0.02])
    assert surface_metrics(other, plane)["nc_mean"] == pytest.approx(1.0)


def test_surface_metrics_by_hand():
    pred = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    gt = np.array([[0.0, 0.0, 0.1]])
    m = surface_metrics(pred, gt, normals_k=2)
    # Acc: 0.1 and sqrt(1 + 0.01); Comp: 0.1.
    assert m["acc_mean"] == pytest.approx((0.1 + math.sqrt(1.01)) / 2)
    assert m["acc_median"] == pytest.approx((0.1 + math.sqrt(1.01)) / 2)
    assert m["comp_mean"] == m["comp_median"] == pytest.approx(0.1)


def test_alignment_undoes_a_similarity():
    gt = surface()
    rotation = Rotation.from_euler("xyz", [20, -35, 50], degrees=True).as_matrix()
    # pred = (R^T (gt - t)) / 2.5, so the aligning similarity is 2.5, R, t.
    translation = np.array([1.0, 2.0, -0.5])
    pred = (gt - translation) @ rotation / 2.5
    m = reconstruction_metrics(pred, gt)
    assert m["acc_mean"] < 1e-6 and m["comp_mean"] < 1e-6
    assert m["scale"] == pytest.approx(2.5)
    np.testing.assert_allclose(m["transform"][:3, :3], 2.5 * rotation, atol=1e-6)
    np.testing.assert_allclose(m["transform"][:3, 3], translation, atol=1e-6)


def test_icp_removes_a_one_centimetre_offset():
    target = np.random.default_rng(4).uniform(-1, 1, size=(2000, 3))
    offset = np.array([0.01, 0.0, -0.005])
    rotation, translation = icp_point_to_point(target - offset, target, threshold=0.1)
    np.testing.assert_allclose(rotation, np.eye(3), atol=1e-6)
    np.testing.assert_allclose(translation, offset, atol=1e-6)


def test_subsampling_is_deterministic_and_bad_points_are_dropped():
    points = surface()
    noisy = points + np.random.default_rng(5).normal(scale=0.005, size=points.shape)
    noisy[0] = np.nan
    first = reconstruction_metrics(noisy, points, max_points=500, seed=7)
    second = reconstruction_metrics(noisy, points, max_points=500, seed=7)
    assert first["num_points"] == 500
    assert first["acc_mean"] == second["acc_mean"] and first["nc_mean"] == second["nc_mean"]
    assert reconstruction_metrics(noisy, points)["num_points"] == len(points) - 1
