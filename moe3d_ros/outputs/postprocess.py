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

import cv2
import numpy as np
import torch

from ..inference.engine import Predictions
from ..model.geometry import matrix_to_quaternion, shift_intrinsics
from .filtering import FilterConfig, boundary_clean_mask

# Distinct colours for expert indices (gating/color), RGB.
GATING_PALETTE = np.array(
    [[230, 25, 75], [60, 180, 75], [0, 130, 200], [255, 225, 25], [145, 30, 180], [70, 240, 240], [245, 130, 48], [240, 50, 230]],
    dtype=np.uint8,
)


# Point layout of the published cloud: PCL's PointXYZRGB (x, y, z, rgb at bytes 0/4/8/12; rgb is
# 0x00RRGGBB as a little-endian uint32) plus the model's confidence and the winning expert.
CLOUD_DTYPE = np.dtype(
    {
        "names": ["x", "y", "z", "rgb", "confidence", "expert"],
        "formats": ["<f4", "<f4", "<f4", "<u4", "<f4", "u1"],
        "offsets": [0, 4, 8, 12, 16, 20],
        "itemsize": 24,
    }
)


@dataclass
class CameraProduct:
    """One camera's depth image and its companions, all [h, w] over the image content."""

    frame: int  # index in the window
    depth: np.ndarray  # float32 (REP-117): NaN where filtered or invalid, -Inf / +Inf out of the filter's range
    confidence: np.ndarray  # float32
    colors: np.ndarray  # [h, w, 3] uint8, the model's input pixels
    intrinsics: np.ndarray  # 3x3 for this depth image
    mask: np.ndarray  # bool, True = published
    winner: np.ndarray | None  # uint8 expert index (MoE head only)
    filter_counts: dict[str, int]


def product_intrinsics(pred: Predictions, frame: int, source_intrinsics: np.ndarray | None) -> np.ndarray:
    """3x3 K of frame `frame`'s depth product (its content box): the camera's own K mapped
    through the preprocessing when known, else the model's prediction."""
    transform = pred.transforms[frame]
    top, _, left, _ = transform.content_box()
    if source_intrinsics is not None:
        model_k = transform.intrinsics_to_model(torch.from_numpy(np.asarray(source_intrinsics, dtype=np.float64)))
    else:
        model_k = torch.from_numpy(pred.intrinsics[frame].astype(np.float64))
    return shift_intrinsics(model_k, -left, -top).numpy()


def camera_product(
    pred: Predictions, frame: int, cfg: FilterConfig, scale: float, source_intrinsics: np.ndarray | None = None
) -> CameraProduct:
    """Depth, confidence, gating and intrinsics of window frame `frame`, cut to its content."""
    top, bottom, left, right = pred.transforms[frame].content_box()
    box = (slice(top, bottom), slice(left, right))
    intrinsics = product_intrinsics(pred, frame, source_intrinsics)
    depth = pred.depth[frame][box] * np.float32(scale)
    confidence = pred.depth_conf[frame][box]
    entropy = pred.gate_entropy[frame][box] if pred.gate_entropy is not None else None
    spread = pred.expert_spread[frame][box] if pred.expert_spread is not None else None
    result = boundary_clean_mask(depth, confidence, cfg, entropy, spread)
    keep = result.mask & np.isfinite(depth)
    return CameraProduct(
        frame=frame,
        depth=result.published(depth),
        confidence=np.ascontiguousarray(confidence, dtype=np.float32),
        colors=np.ascontiguousarray(pred.images[frame][box]),
        intrinsics=intrinsics,
        mask=keep,
        winner=np.ascontiguousarray(pred.winner[frame][box]) if pred.winner is not None else None,
        filter_counts=result.counts,
    )


# applyColorMap writes the table's channels in order; an RGB table gives RGB output.
_PALETTE_LUT = np.ascontiguousarray(GATING_PALETTE[np.arange(256) % len(GATING_PALETTE)].reshape(256, 1, 3))


def gating_colors(winner: np.ndarray) -> np.ndarray:
    """Expert index [h, w] uint8 -> RGB [h, w, 3] with a fixed palette (one table look-up)."""
    return cv2.applyColorMap(np.ascontiguousarray(winner), _PALETTE_LUT)


def extrinsics_to_reference(pred: Predictions, scale: float = 1.0) -> np.ndarray:
    """[S, 3, 4] camera-from-reference: the predicted poses re-expressed so that frame 0's camera
    is exactly the identity (the model's world frame is only approximately frame 0's camera),
    translations in published units (model units x `scale`, like the depth)."""
    if pred.extrinsics is None:
        raise ValueError("poses need the camera head's predictions")
    e = torch.from_numpy(pred.extrinsics).double()
    rotation = e[:, :, :3] @ e[0, :, :3].T
    translation = (e[:, :, 3] - (rotation @ e[0, :, 3])) * scale
    return torch.cat([rotation, translation[..., None]], dim=-1).numpy()


def _pack_points(out: np.ndarray, product: CameraProduct, extrinsic: np.ndarray, step: int) -> None:
    """Write one camera's points into `out` (a [h, w, 6] float32 view of CLOUD_DTYPE records).

    X_ref = R^T (d * ray - t) with ray = ((u - cx) / fx, (v - cy) / fy, 1); NaN depth gives NaN
    points, +-Inf depth (REP-117: out of range) a point at infinity along its ray. Each column is
    computed contiguous, then one np.stack interleaves them.
    """
    k = product.intrinsics
    depth = product.depth[::step, ::step]
    height, width = product.depth.shape
    ray_u = ((np.arange(0, width, step) - k[0, 2]) / k[0, 0]).astype(np.float32)[None, :]
    ray_v = ((np.arange(0, height, step) - k[1, 2]) / k[1, 1]).astype(np.float32)[:, None]
    rotation_t = extrinsic[:, :3].T.astype(np.float32)
    offset = (-rotation_t @ extrinsic[:, 3]).astype(np.float32)
    with np.errstate(invalid="ignore"):  # 0 x inf: mended below
        xyz = [(rotation_t[i, 0] * ray_u + rotation_t[i, 1] * ray_v + rotation_t[i, 2]) * depth + offset[i] for i in range(3)]
    bgra = cv2.cvtColor(np.ascontiguousarray(product.colors[::step, ::step]), cv2.COLOR_RGB2BGRA).view(np.uint32)[..., 0]
    rgb = (bgra & np.uint32(0x00FFFFFF)).view(np.float32)
    winner = product.winner[::step, ::step] if product.winner is not None else np.zeros(depth.shape, np.uint8)
    columns = [*xyz, rgb, product.confidence[::step, ::step].astype(np.float32), winner.astype(np.uint32).view(np.float32)]
    np.stack(columns, axis=-1, out=out)
    at_infinity = np.isinf(depth)
    if at_infinity.any():  # 0 x inf along an axis the ray does not leave: that coordinate is 0
        coords = out[..., :3]
        coords[at_infinity[..., None] & np.isnan(coords)] = 0.0
    out[np.isnan(out[..., :3]).any(axis=-1), :3] = np.nan  # a point is finite, at infinity, or NaN


def fused_cloud(pred: Predictions, products: list[CameraProduct], organized: bool, decimation: int = 1,
                scale: float = 1.0) -> np.ndarray:
    """Points of the given camera products in the reference camera's frame, as CLOUD_DTYPE records.

    Organised: [sum of h, w], the cameras' grids stacked vertically (they must share a size),
    filtered points NaN, out-of-range points at infinity (REP-117). Unorganised: [N], only the
    finite points. `scale` is the one the
    products' depth was scaled with.
    """
    extrinsics = extrinsics_to_reference(pred, scale)
    shapes = [p.depth[::decimation, ::decimation].shape for p in products]
    if organized and len(set(shapes)) > 1:
        raise ValueError(f"an organised cloud needs cameras of one size, got {sorted(set(shapes))}")
    if organized:
        out = np.empty((sum(h for h, _ in shapes), shapes[0][1], 6), dtype=np.float32)
        row = 0
        for product, (height, _) in zip(products, shapes):
            _pack_points(out[row : row + height], product, extrinsics[product.frame], decimation)
            row += height
        return out.view(CLOUD_DTYPE)[..., 0]
    parts = []
    for product, shape in zip(products, shapes):
        block = np.empty((*shape, 6), dtype=np.float32)
        _pack_points(block, product, extrinsics[product.frame], decimation)
        parts.append(block[np.isfinite(block[..., :3]).all(axis=-1)])  # [n, 6]: the kept points' records
    return np.concatenate(parts).view(CLOUD_DTYPE)[:, 0]


def camera_cloud(product: CameraProduct, organized: bool, decimation: int = 1) -> np.ndarray:
    """One camera's points in its own optical frame (REP-103: z forward), as CLOUD_DTYPE records:
    for consumers that ray-cast from the cloud's origin (OctoMap, costmap voxel layers), which a
    fused cloud in another camera's frame would mislead. Organised [h, w] or unorganised [N]."""
    identity = np.hstack([np.eye(3), np.zeros((3, 1))])
    shape = product.depth[::decimation, ::decimation].shape
    block = np.empty((*shape, 6), dtype=np.float32)
    _pack_points(block, product, identity, decimation)
    if not organized:
        block = block[np.isfinite(block[..., :3]).all(axis=-1)]
    return block.view(CLOUD_DTYPE)[..., 0]


def camera_poses(pred: Predictions, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Camera-to-reference poses of the window: positions [S, 3] (model units x `scale`) and
    quaternions x,y,z,w [S, 4]."""
    extrinsics = extrinsics_to_reference(pred, scale)
    rotation_t = extrinsics[:, :, :3].transpose(0, 2, 1)
    positions = -np.einsum("sij,sj->si", rotation_t, extrinsics[:, :, 3])
    return positions, matrix_to_quaternion(torch.from_numpy(rotation_t)).numpy()
