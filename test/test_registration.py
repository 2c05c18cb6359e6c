"""Depth registered to the camera image (no ROS): the input's size and K, crop and resize undone,
and every registered pixel unprojects where the model's own cloud has it."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from moe3d_ros.inference.engine import Predictions
from moe3d_ros.inference.preprocess import plan_transform
from moe3d_ros.model.geometry import unproject_depth
from moe3d_ros.outputs.filtering import FilterConfig
from moe3d_ros.outputs.postprocess import camera_product, fused_cloud
from moe3d_ros.outputs.registration import UNSEEN_EXPERT, register_to_source

KEEP_ALL = FilterConfig(min_confidence=0.0, max_gate_entropy=math.inf, max_edge_jump=math.inf)


def _prediction(source_hw: tuple[int, int], mode: str) -> Predictions:
    rng = np.random.default_rng(3)
    transform = plan_transform(source_hw, mode, target=112, patch=14)
    h, w = transform.model_hw
    k = np.array([[90.0, 0, w / 2], [0, 90.0, h / 2], [0, 0, 1]], np.float32)
    return Predictions(images=rng.integers(0, 256, (1, h, w, 3), dtype=np.uint8),
                       depth=rng.uniform(1, 4, (1, h, w)).astype(np.float32),
                       depth_conf=rng.uniform(1, 3, (1, h, w)).astype(np.float32),
                       extrinsics=np.hstack([np.eye(3), np.zeros((3, 1))])[None].astype(np.float32),
                       intrinsics=k[None], transforms=[transform], winner=rng.integers(0, 4, (1, h, w), dtype=np.uint8),
                       num_experts=4)


@pytest.mark.parametrize("source_hw,mode", [((480, 640), "crop"), ((300, 200), "crop"), ((300, 200), "pad")])
def test_registered_depth_has_the_inputs_size_and_k_and_lands_on_the_models_cloud(source_hw, mode):
    pred = _prediction(source_hw, mode)
    height, width = source_hw
    camera_k = np.array([[0.8 * width, 0, (width - 1) / 2], [0, 0.8 * width, (height - 1) / 2], [0, 0, 1]])
    product = camera_product(pred, 0, KEEP_ALL, 1.0, camera_k)
    registered = register_to_source(pred, product, camera_k)
    assert registered.depth.shape == source_hw and registered.confidence.shape == source_hw
    np.testing.assert_array_equal(registered.intrinsics, camera_k)
    cloud = fused_cloud(pred, [product], organized=True)
    model_points = np.stack([cloud["x"], cloud["y"], cloud["z"]], axis=-1)
    points = unproject_depth(torch.from_numpy(np.nan_to_num(registered.depth)), torch.from_numpy(camera_k).float()).numpy()
    seen = np.isfinite(registered.depth)
    assert seen.mean() > 0.5
    # Each camera pixel's point is the model pixel's point nearest to it: within half a model
    # pixel of it sideways (the model pixel is at most that far from the camera pixel's centre).
    transform = pred.transforms[0]
    top, _, left, _ = transform.content_box()
    v, u = np.nonzero(seen)
    mu, mv = transform.source_to_model(torch.from_numpy(u.astype(np.float64)), torch.from_numpy(v.astype(np.float64)))
    nearest = model_points[np.floor(mv.numpy() + 0.5).astype(int) - top, np.floor(mu.numpy() + 0.5).astype(int) - left]
    lateral = np.linalg.norm(points[v, u] - nearest, axis=-1)
    focal = product.intrinsics[0, 0]
    assert (lateral <= nearest[:, 2] * 0.75 / focal + 1e-5).all()
    np.testing.assert_allclose(points[v, u, 2], nearest[:, 2], rtol=1e-6)


def test_cropped_away_pixels_are_unknown():
    pred = _prediction((300, 200), "crop")  # portrait: the model sees a centre crop only
    product = camera_product(pred, 0, KEEP_ALL, 1.0)
    registered = register_to_source(pred, product, None)
    assert np.isnan(registered.depth[0]).all() and np.isnan(registered.depth[-1]).all()
    assert (registered.winner[0] == UNSEEN_EXPERT).all() and (registered.confidence[0] == 0).all()
    assert np.isfinite(registered.depth[150]).all()
    # without a CameraInfo the model's K is mapped back to the camera's pixels
    expected = pred.transforms[0].intrinsics_to_source(torch.from_numpy(pred.intrinsics[0].astype(np.float64))).numpy()
    np.testing.assert_allclose(registered.intrinsics, expected)
