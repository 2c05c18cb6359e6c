"""From engine predictions to what gets published, with no ROS: per-camera depth products,
the fused point cloud and camera poses.

Depth products cover each camera's image content only (padding of the "pad" mode is cut away),
at the model's resolution. Their intrinsics are the camera's own (from CameraInfo, mapped
through the preprocessing) when known, else the model's predicted ones. The cloud is exactly
that depth unprojected with those intrinsics and moved into the reference camera's frame with
the predicted poses, re-expressed so that the reference camera's pose is exactly the identity.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .engine import Predictions
from .filtering import FilterConfig, boundary_clean_mask
from .geometry import matrix_to_quaternion, shift_intrinsics, unproject_depth

# Distinct colours for expert indices (gating/color), RGB.
GATING_PALETTE = np.array(
    [[230, 25, 75], [60, 180, 75], [0, 130, 200], [255, 225, 25], [145, 30, 180], [70, 240, 240], [245, 130, 48], [240, 50, 230]],
    dtype=np.uint8,
)


@dataclass
class CloudArrays:
    """Per-point arrays, all with the same leading shape ([N] or [H, W])."""

    points: np.ndarray  # [..., 3] float32, NaN for filtered points of an organised cloud
    colors: np.ndarray  # [..., 3] uint8 RGB
    confidence: np.ndarray  # [...] float32
    expert: np.ndarray  # [...] uint8 (0 without an MoE head)


@dataclass
class CameraProduct:
    """One camera's depth image and its companions, all [h, w] over the image content."""

    frame: int  # index in the window
    depth: np.ndarray  # float32, NaN where filtered or invalid
    confidence: np.ndarray  # float32
    colors: np.ndarray  # [h, w, 3] uint8, the model's input pixels
    intrinsics: np.ndarray  # 3x3 for this depth image
    mask: np.ndarray  # bool, True = published
    winner: np.ndarray | None  # uint8 expert index (MoE head only)
    filter_counts: dict[str, int]


def camera_product(
    pred: Predictions, frame: int, cfg: FilterConfig, scale: float, source_intrinsics: np.ndarray | None = None
) -> CameraProduct:
    """Depth, confidence, gating and intrinsics of window frame `frame`, cut to its content."""
    transform = pred.transforms[frame]
    top, bottom, left, right = transform.content_box()
    box = (slice(top, bottom), slice(left, right))
    if source_intrinsics is not None:
        model_k = transform.intrinsics_to_model(torch.from_numpy(np.asarray(source_intrinsics, dtype=np.float64)))
    else:
        model_k = torch.from_numpy(pred.intrinsics[frame].astype(np.float64))
    intrinsics = shift_intrinsics(model_k, -left, -top).numpy()
    depth = pred.depth[frame][box] * np.float32(scale)
    confidence = pred.depth_conf[frame][box]
    entropy = pred.gate_entropy[frame][box] if pred.gate_entropy is not None else None
    result = boundary_clean_mask(depth, confidence, cfg, entropy)
    return CameraProduct(
        frame=frame,
        depth=np.where(result.mask, depth, np.float32(np.nan)).astype(np.float32),
        confidence=np.ascontiguousarray(confidence, dtype=np.float32),
        colors=np.ascontiguousarray(pred.images[frame][box]),
        intrinsics=intrinsics,
        mask=result.mask,
        winner=np.ascontiguousarray(pred.winner[frame][box]) if pred.winner is not None else None,
        filter_counts=result.counts,
    )


def gating_colors(winner: np.ndarray) -> np.ndarray:
    """Expert index [h, w] -> RGB [h, w, 3] with a fixed palette."""
    return GATING_PALETTE[winner % len(GATING_PALETTE)]


def _decimate(array: np.ndarray, step: int) -> np.ndarray:
    return array[::step, ::step]


def extrinsics_to_reference(pred: Predictions) -> np.ndarray:
    """[S, 3, 4] camera-from-reference: the predicted poses re-expressed so that frame 0's camera
    is exactly the identity (the model's world frame is only approximately frame 0's camera)."""
    if pred.extrinsics is None:
        raise ValueError("poses need the camera head's predictions")
    e = torch.from_numpy(pred.extrinsics).double()
    rotation = e[:, :, :3] @ e[0, :, :3].T
    translation = e[:, :, 3] - (rotation @ e[0, :, 3])
    return torch.cat([rotation, translation[..., None]], dim=-1).numpy()


def fused_cloud(pred: Predictions, products: list[CameraProduct], organized: bool, decimation: int = 1) -> CloudArrays:
    """Points of the given camera products in frame 0's camera frame (the reference camera).

    Organised: the cameras' [h, w] grids stacked vertically (they must share a size), filtered
    points NaN. Unorganised: filtered points dropped.
    """
    extrinsics = extrinsics_to_reference(pred)
    parts: list[CloudArrays] = []
    for product in products:
        depth = torch.from_numpy(np.nan_to_num(product.depth, nan=0.0))
        points = unproject_depth(depth, torch.from_numpy(product.intrinsics).float())
        extrinsic = torch.from_numpy(extrinsics[product.frame]).float()
        rotation, translation = extrinsic[:, :3], extrinsic[:, 3]
        points = ((points - translation) @ rotation).numpy()  # X_ref = R^T (X_cam - t)
        points[~product.mask] = np.nan
        expert = product.winner if product.winner is not None else np.zeros(product.mask.shape, np.uint8)
        parts.append(
            CloudArrays(
                points=_decimate(points.astype(np.float32), decimation),
                colors=_decimate(product.colors, decimation),
                confidence=_decimate(product.confidence, decimation),
                expert=_decimate(expert, decimation),
            )
        )
    if organized:
        shapes = {p.confidence.shape for p in parts}
        if len(shapes) > 1:
            raise ValueError(f"an organised cloud needs cameras of one size, got {sorted(shapes)}")
        return CloudArrays(*(np.concatenate([getattr(p, f) for p in parts], axis=0) for f in ("points", "colors", "confidence", "expert")))
    keep = [np.isfinite(p.points).all(axis=-1) for p in parts]
    return CloudArrays(*(np.concatenate([getattr(p, f)[k] for p, k in zip(parts, keep)], axis=0) for f in ("points", "colors", "confidence", "expert")))


def camera_poses(pred: Predictions) -> tuple[np.ndarray, np.ndarray]:
    """Camera-to-reference poses of the window: positions [S, 3] and quaternions x,y,z,w [S, 4]."""
    extrinsics = torch.from_numpy(extrinsics_to_reference(pred))
    rotation_t = extrinsics[:, :, :3].transpose(1, 2)
    positions = -(rotation_t @ extrinsics[:, :, 3:])[..., 0]
    return positions.numpy(), matrix_to_quaternion(rotation_t).numpy()
