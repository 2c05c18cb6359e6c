"""Camera geometry in torch, batched over any leading dimensions.

Conventions: OpenCV / ROS optical frames (x right, y down, z forward); extrinsics are
camera-from-world [R | t]; pixel coordinates are integers at pixel centres, as in CameraInfo.
"""
from __future__ import annotations

import torch
from torch import Tensor


def quaternion_to_matrix(quat: Tensor) -> Tensor:
    """[..., 4] quaternion x, y, z, w (need not be unit) -> [..., 3, 3] rotation."""
    x, y, z, w = quat.unbind(-1)
    two_s = 2.0 / (quat * quat).sum(-1)
    rows = (
        1 - two_s * (y * y + z * z), two_s * (x * y - z * w), two_s * (x * z + y * w),
        two_s * (x * y + z * w), 1 - two_s * (x * x + z * z), two_s * (y * z - x * w),
        two_s * (x * z - y * w), two_s * (y * z + x * w), 1 - two_s * (x * x + y * y),
    )  # fmt: skip
    return torch.stack(rows, dim=-1).unflatten(-1, (3, 3))


def pose_encoding_to_cameras(pose_enc: Tensor, image_hw: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """VGGT's 9-value pose encoding -> (extrinsics [..., 3, 4], intrinsics [..., 3, 3]).

    The principal point is exactly (W/2, H/2) of the image the model saw; focal lengths come
    from the predicted fields of view.
    """
    height, width = image_hw
    rotation = quaternion_to_matrix(pose_enc[..., 3:7])
    extrinsics = torch.cat([rotation, pose_enc[..., :3, None]], dim=-1)
    fy = (height / 2.0) / torch.tan(pose_enc[..., 7] / 2.0)
    fx = (width / 2.0) / torch.tan(pose_enc[..., 8] / 2.0)
    intrinsics = torch.zeros(*pose_enc.shape[:-1], 3, 3, dtype=pose_enc.dtype, device=pose_enc.device)
    intrinsics[..., 0, 0] = fx
    intrinsics[..., 1, 1] = fy
    intrinsics[..., 0, 2] = width / 2.0
    intrinsics[..., 1, 2] = height / 2.0
    intrinsics[..., 2, 2] = 1.0
    return extrinsics, intrinsics


def pixel_grid(height: int, width: int, device: torch.device | None = None) -> tuple[Tensor, Tensor]:
    """(u, v) integer pixel coordinates as float tensors of shape [H, W]."""
    v, u = torch.meshgrid(
        torch.arange(height, dtype=torch.float32, device=device),
        torch.arange(width, dtype=torch.float32, device=device),
        indexing="ij",
    )
    return u, v


def unproject_depth(depth: Tensor, intrinsics: Tensor) -> Tensor:
    """z-depth [..., H, W] and intrinsics [..., 3, 3] -> camera-frame points [..., H, W, 3]."""
    u, v = pixel_grid(*depth.shape[-2:], device=depth.device)
    k = intrinsics[..., None, None, :, :].to(depth.dtype)
    x = (u - k[..., 0, 2]) * depth / k[..., 0, 0]
    y = (v - k[..., 1, 2]) * depth / k[..., 1, 1]
    return torch.stack([x, y, depth], dim=-1)


def invert_extrinsics(extrinsics: Tensor) -> Tensor:
    """camera-from-world [..., 3, 4] -> world-from-camera [..., 3, 4]."""
    rotation_t = extrinsics[..., :3].transpose(-1, -2)
    translation = -(rotation_t @ extrinsics[..., 3:])
    return torch.cat([rotation_t, translation], dim=-1)


def transform_points(points: Tensor, transform: Tensor) -> Tensor:
    """Apply [..., 3, 4] to points [..., H, W, 3] (one transform per image)."""
    rotated = torch.einsum("...ij,...hwj->...hwi", transform[..., :3], points)
    return rotated + transform[..., None, None, :, 3]


def depth_to_world_points(depth: Tensor, extrinsics: Tensor, intrinsics: Tensor) -> Tensor:
    """World points X_w = R^T (X_c - t) for every pixel: [..., H, W, 3]."""
    return transform_points(unproject_depth(depth, intrinsics), invert_extrinsics(extrinsics.to(depth.dtype)))


def scale_intrinsics(intrinsics: Tensor, scale_x: float, scale_y: float) -> Tensor:
    """Intrinsics after resizing the image by (scale_x, scale_y), pixel-centre convention."""
    out = intrinsics.clone()
    out[..., 0, 0] = intrinsics[..., 0, 0] * scale_x
    out[..., 0, 1] = intrinsics[..., 0, 1] * scale_x
    out[..., 1, 1] = intrinsics[..., 1, 1] * scale_y
    out[..., 0, 2] = (intrinsics[..., 0, 2] + 0.5) * scale_x - 0.5
    out[..., 1, 2] = (intrinsics[..., 1, 2] + 0.5) * scale_y - 0.5
    return out


def shift_intrinsics(intrinsics: Tensor, shift_x: float, shift_y: float) -> Tensor:
    """Intrinsics after moving the image content by (shift_x, shift_y) pixels.

    Cropping `left` columns is a shift of -left; padding `left` columns is a shift of +left.
    """
    out = intrinsics.clone()
    out[..., 0, 2] = intrinsics[..., 0, 2] + shift_x
    out[..., 1, 2] = intrinsics[..., 1, 2] + shift_y
    return out


def matrix_to_quaternion(rotation: Tensor) -> Tensor:
    """[..., 3, 3] rotation -> [..., 4] unit quaternion x, y, z, w with w >= 0."""
    m = rotation
    trace = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    # Four candidate formulas; each is accurate where its denominator is largest.
    candidates = torch.stack(
        [
            torch.stack([m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1], 1 + trace], -1),
            torch.stack([1 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2], m[..., 0, 1] + m[..., 1, 0], m[..., 0, 2] + m[..., 2, 0], m[..., 2, 1] - m[..., 1, 2]], -1),
            torch.stack([m[..., 0, 1] + m[..., 1, 0], 1 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2], m[..., 1, 2] + m[..., 2, 1], m[..., 0, 2] - m[..., 2, 0]], -1),
            torch.stack([m[..., 0, 2] + m[..., 2, 0], m[..., 1, 2] + m[..., 2, 1], 1 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2], m[..., 1, 0] - m[..., 0, 1]], -1),
        ],
        dim=-2,
    )  # [..., 4 candidates, 4]
    scores = torch.stack([trace, m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]], dim=-1)
    best = scores.argmax(dim=-1)[..., None, None].expand(*scores.shape[:-1], 1, 4)
    quat = candidates.gather(-2, best).squeeze(-2)
    quat = quat / quat.norm(dim=-1, keepdim=True)
    return torch.where(quat[..., 3:] < 0, -quat, quat)


def cameras_to_pose_encoding(extrinsics: Tensor, intrinsics: Tensor, image_hw: tuple[int, int]) -> Tensor:
    """Inverse of pose_encoding_to_cameras: [..., 3, 4] + [..., 3, 3] -> [..., 9]."""
    height, width = image_hw
    quat = matrix_to_quaternion(extrinsics[..., :3])
    fov_h = 2 * torch.atan((height / 2.0) / intrinsics[..., 1, 1])
    fov_w = 2 * torch.atan((width / 2.0) / intrinsics[..., 0, 0])
    return torch.cat([extrinsics[..., :, 3], quat, fov_h[..., None], fov_w[..., None]], dim=-1)


def relative_to_first(cam_to_world: Tensor) -> Tensor:
    """[..., S, 4, 4] camera-to-world poses -> [..., S, 3, 4] camera-from-world with world = frame 0's camera."""
    world_to_cam = torch.linalg.inv(cam_to_world)
    return (world_to_cam @ cam_to_world[..., :1, :, :])[..., :3, :]
