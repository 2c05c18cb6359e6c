"""From predictions to published products, without ROS: content crop, intrinsics, the fused
cloud against depth unprojected with the published intrinsics and poses."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from moe3d_ros.inference.engine import Predictions
from moe3d_ros.outputs.filtering import FilterConfig
from moe3d_ros.model.geometry import quaternion_to_matrix, unproject_depth
from moe3d_ros.outputs.postprocess import (
    CLOUD_DTYPE,
    GATING_PALETTE,
    camera_cloud,
    camera_poses,
    camera_product,
    fused_cloud,
    gating_colors,
)
from moe3d_ros.inference.preprocess import plan_transform

KEEP_ALL = FilterConfig(min_confidence=0.0, max_gate_entropy=math.inf, max_edge_jump=math.inf)


def _predictions(mode="crop", source_hw=(60, 80)) -> Predictions:
    rng = np.random.default_rng(0)
    transform = plan_transform(source_hw, mode, target=56)
    h, w = transform.model_hw
    rot = [quaternion_to_matrix(torch.tensor(q, dtype=torch.float64)).numpy() for q in ([0.1, 0.2, 0.0, 1.0], [0.0, -0.3, 0.1, 1.0])]
    extrinsics = np.stack([np.hstack([rot[0], [[0.1], [0.0], [0.2]]]), np.hstack([rot[1], [[0.5], [-0.1], [0.0]]])]).astype(np.float32)
    k = np.array([[50.0, 0, w / 2], [0, 50.0, h / 2], [0, 0, 1]], np.float32)
    return Predictions(
        images=rng.integers(0, 256, (2, h, w, 3), dtype=np.uint8),
        depth=rng.uniform(1, 3, (2, h, w)).astype(np.float32),
        depth_conf=rng.uniform(1, 3, (2, h, w)).astype(np.float32),
        extrinsics=extrinsics,
        intrinsics=np.stack([k, k]),
        transforms=[transform, transform],
        winner=rng.integers(0, 4, (2, h, w), dtype=np.uint8),
        gate_entropy=rng.uniform(0, 1.4, (2, h, w)).astype(np.float32),
        num_experts=4,
    )


def test_pad_mode_products_cover_the_image_content_only():
    pred = _predictions("pad", source_hw=(80, 60))  # portrait: padded left and right
    product = camera_product(pred, 0, KEEP_ALL, scale=1.0)
    top, bottom, left, right = pred.transforms[0].content_box()
    assert product.depth.shape == (bottom - top, right - left) and left > 0
    np.testing.assert_array_equal(product.depth, pred.depth[0][:, left:right])
    assert product.intrinsics[0, 2] == pytest.approx(pred.intrinsics[0][0, 2] - left)


def test_source_intrinsics_are_mapped_through_the_preprocessing():
    pred = _predictions("crop", source_hw=(60, 80))
    source_k = np.array([[70.0, 0, 39.5], [0, 70.0, 29.5], [0, 0, 1]])
    product = camera_product(pred, 1, KEEP_ALL, scale=2.0, source_intrinsics=source_k)
    expected = pred.transforms[1].intrinsics_to_model(torch.from_numpy(source_k)).numpy()
    np.testing.assert_allclose(product.intrinsics, expected)
    np.testing.assert_allclose(product.depth, 2.0 * pred.depth[1])


def test_filtered_pixels_are_nan_and_counted():
    pred = _predictions()
    product = camera_product(pred, 0, FilterConfig(min_confidence=0.0, max_gate_entropy=0.7, max_edge_jump=math.inf), 1.0)
    assert np.array_equal(np.isnan(product.depth), pred.gate_entropy[0] > 0.7)
    assert product.filter_counts["gate_entropy"] == int((pred.gate_entropy[0] > 0.7).sum())


def _pose_matrix(position, quaternion):
    rotation = quaternion_to_matrix(torch.tensor(quaternion, dtype=torch.float64)).numpy()
    return rotation, np.asarray(position)


def test_cloud_equals_depth_unprojected_with_published_intrinsics_and_poses():
    pred = _predictions()
    products = [camera_product(pred, i, FilterConfig(min_confidence=0.0, max_gate_entropy=0.9, max_edge_jump=math.inf), 1.0) for i in (0, 1)]
    cloud = fused_cloud(pred, products, organized=True)
    xyz = np.stack([cloud["x"], cloud["y"], cloud["z"]], axis=-1)
    positions, quaternions = camera_poses(pred)
    np.testing.assert_allclose(positions[0], 0.0, atol=1e-6)
    np.testing.assert_allclose(quaternions[0], [0, 0, 0, 1], atol=1e-6)
    h = products[0].depth.shape[0]
    for i, product in enumerate(products):
        camera_points = unproject_depth(torch.from_numpy(np.nan_to_num(product.depth)), torch.from_numpy(product.intrinsics).float()).numpy()
        rotation, position = _pose_matrix(positions[i], quaternions[i])
        expected = camera_points @ rotation.T + position
        expected[np.isnan(product.depth)] = np.nan
        np.testing.assert_allclose(xyz[i * h : (i + 1) * h], expected, atol=1e-4, equal_nan=True)
        np.testing.assert_array_equal(cloud["expert"][i * h : (i + 1) * h], product.winner)
        rgb = cloud["rgb"][i * h : (i + 1) * h]
        np.testing.assert_array_equal(np.stack([rgb >> 16, (rgb >> 8) & 255, rgb & 255], -1), product.colors)
        np.testing.assert_array_equal(cloud["confidence"][i * h : (i + 1) * h], product.confidence)
    flat = fused_cloud(pred, products, organized=False)
    assert flat.dtype == CLOUD_DTYPE and flat.ndim == 1
    assert len(flat) == sum(int(p.mask.sum()) for p in products) and np.isfinite(flat["x"]).all()


def test_decimation_keeps_every_nth_pixel():
    pred = _predictions()
    product = camera_product(pred, 0, KEEP_ALL, 1.0)
    full = fused_cloud(pred, [product], organized=True)
    every3 = fused_cloud(pred, [product], organized=True, decimation=3)
    np.testing.assert_array_equal(every3, full[::3, ::3])


def test_gating_palette_gives_distinct_colours():
    winner = np.array([[0, 1], [2, 3 + len(GATING_PALETTE)]], dtype=np.uint8)
    colors = gating_colors(winner)
    assert len({tuple(c) for c in colors.reshape(-1, 3)}) == 4
    np.testing.assert_array_equal(colors, GATING_PALETTE[winner % len(GATING_PALETTE)])


def test_out_of_range_points_lie_at_infinity_along_their_rays_in_organised_clouds_only():
    pred = _predictions()
    pred.depth[:, :, :10] = 50.0  # a far wall beyond max_depth
    cfg = FilterConfig(min_confidence=0.0, max_gate_entropy=math.inf, max_edge_jump=math.inf, max_depth=10.0)
    products = [camera_product(pred, i, cfg, 1.0) for i in range(2)]
    assert np.isposinf(products[0].depth[:, :10]).all() and np.isfinite(products[0].depth[:, 10:]).all()
    organised = fused_cloud(pred, products, organized=True)
    far = organised[: products[0].depth.shape[0], :10]
    xyz = np.stack([far["x"], far["y"], far["z"]], axis=-1)
    assert not np.isnan(xyz).any() and np.isinf(xyz).any(axis=-1).all()
    # the direction of infinity is the ray's, in the reference frame (frame 0's camera: the identity)
    k = products[0].intrinsics
    assert np.all(np.sign(xyz[..., 0]) == np.sign(np.arange(10) - k[0, 2])[None, :])
    loose = fused_cloud(pred, products, organized=False)
    assert np.isfinite(np.stack([loose["x"], loose["y"], loose["z"]])).all()
    assert len(loose) == 2 * products[0].depth.size - 2 * far.size


def test_a_cameras_own_cloud_is_its_depth_unprojected_in_its_own_frame():
    pred = _predictions()
    product = camera_product(pred, 1, FilterConfig(min_confidence=0.0, max_gate_entropy=0.7, max_edge_jump=math.inf), 1.0)
    cloud = camera_cloud(product, organized=True)
    expected = unproject_depth(torch.from_numpy(np.nan_to_num(product.depth)), torch.from_numpy(product.intrinsics).float()).numpy()
    expected[np.isnan(product.depth)] = np.nan
    np.testing.assert_allclose(np.stack([cloud["x"], cloud["y"], cloud["z"]], axis=-1), expected, atol=1e-5, equal_nan=True)
    loose = camera_cloud(product, organized=False, decimation=2)
    assert len(loose) == np.isfinite(product.depth[::2, ::2]).sum()
