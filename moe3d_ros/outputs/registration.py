"""Depth registered to the camera image: the model's products (on its resized and cropped grid)
mapped back onto the input image's pixels, with the input's intrinsics. No ROS.

A consumer pairs depth with the colour image it came from (depth_image_proc point_cloud_xyzrgb
needs the same size, RTAB-Map an integer ratio), so depth, confidence and gating leave at the
camera's size. Each camera pixel takes the model pixel nearest to it (nearest, never
interpolated: a blend of two surfaces at an edge would be a flying pixel); camera pixels the
model never saw (cropped away) are NaN depth (unknown), confidence 0 and gating 255.
"""
from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import torch

from ..inference.engine import Predictions
from .postprocess import CameraProduct

UNSEEN_EXPERT = 255


def source_intrinsics(pred: Predictions, frame: int, camera_k: np.ndarray | None) -> np.ndarray:
    """3x3 K of the camera image: the camera's own when known, else the model's prediction
    mapped back through the preprocessing."""
    if camera_k is not None:
        return np.asarray(camera_k, dtype=np.float64)
    predicted = torch.from_numpy(pred.intrinsics[frame].astype(np.float64))
    return pred.transforms[frame].intrinsics_to_source(predicted).numpy()


def register_to_source(pred: Predictions, product: CameraProduct, camera_k: np.ndarray | None) -> CameraProduct:
    """`product` resampled onto its frame's camera image grid (same size and K as the input)."""
    transform = pred.transforms[product.frame]
    height, width = transform.source_hw
    top, _, left, _ = transform.content_box()
    u = torch.arange(width, dtype=torch.float64)
    v = torch.arange(height, dtype=torch.float64)
    model_u, model_v = transform.source_to_model(u, v)
    cols = torch.floor(model_u + 0.5).numpy() - left  # nearest product pixel
    rows = torch.floor(model_v + 0.5).numpy() - top
    map_u = np.broadcast_to(cols.astype(np.float32)[None, :], (height, width))
    map_v = np.broadcast_to(rows.astype(np.float32)[:, None], (height, width))

    def sample(image: np.ndarray, outside: float) -> np.ndarray:
        return cv2.remap(image, map_u, map_v, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=outside)

    winner = sample(product.winner, UNSEEN_EXPERT) if product.winner is not None else None
    depth = sample(product.depth, np.nan)
    return replace(
        product,
        depth=depth,
        confidence=sample(product.confidence, 0.0),
        colors=sample(product.colors, 0),
        intrinsics=source_intrinsics(pred, product.frame, camera_k),
        mask=np.isfinite(depth),
        winner=winner,
    )
