"""Camera geometry against hand-computed values."""
from __future__ import annotations

import math

import torch

from moe3d_ros.model.geometry import (
    depth_to_world_points,
    invert_extrinsics,
    pose_encoding_to_cameras,
    quaternion_to_matrix,
    scale_intrinsics,
    shift_intrinsics,
    unproject_depth,
)


def test_quaternion_is_scalar_last_and_need_not_be_unit():
    torch.testing.assert_close(quaternion_to_matrix(torch.tensor([0.0, 0.0, 0.0, 1.0])), torch.eye(3))
    s = math.sqrt(0.5)
    rz90 = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    torch.testing.assert_close(quaternion_to_matrix(torch.tensor([0.0, 0.0, s, s])), rz90)
    torch.testing.assert_close(quaternion_to_matrix(torch.tensor([0.0, 0.0, 3.0, 3.0])), rz90)


def test_pose_encoding_decodes_translation_rotation_and_fov():
    enc = torch.tensor([[1.0, 2.0, 3.0, 0.0, 0.0, 0.0, 1.0, math.pi / 2, 2 * math.atan(0.5)]])
    extrinsics, intrinsics = pose_encoding_to_cameras(enc, (100, 60))
    torch.testing.assert_close(extrinsics[0], torch.tensor([[1.0, 0, 0, 1], [0, 1.0, 0, 2], [0, 0, 1.0, 3]]))
    # fov_h 90 deg over 100 rows -> fy = 50; tan(fov_w/2) = 0.5 over 60 columns -> fx = 60.
    expected = torch.tensor([[60.0, 0, 30.0], [0, 50.0, 50.0], [0, 0, 1.0]])
    torch.testing.assert_close(intrinsics[0], expected)


def test_unproject_uses_integer_pixel_coordinates():
    k = torch.tensor([[10.0, 0, 2.0], [0, 20.0, 1.0], [0, 0, 1.0]])
    depth = torch.full((3, 5), 4.0)
    points = unproject_depth(depth, k)
    torch.testing.assert_close(points[1, 2], torch.tensor([0.0, 0.0, 4.0]))
    torch.testing.assert_close(points[0, 4], torch.tensor([(4 - 2) * 4 / 10, (0 - 1) * 4 / 20, 4.0]))


def test_world_points_follow_camera_from_world_convention():
    # Camera rotated 90 deg about z and placed so that t = (1, 0, 0): X_w = R^T (X_c - t).
    rz90 = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    extrinsics = torch.cat([rz90, torch.tensor([[1.0], [0.0], [0.0]])], dim=1)
    k = torch.tensor([[1.0, 0, 0.0], [0, 1.0, 0.0], [0, 0, 1.0]])
    depth = torch.full((1, 2), 2.0)
    world = depth_to_world_points(depth, extrinsics, k)
    camera_point = torch.tensor([2.0, 0.0, 2.0])  # pixel (1, 0) at depth 2
    torch.testing.assert_close(world[0, 1], rz90.T @ (camera_point - torch.tensor([1.0, 0.0, 0.0])))
    back = invert_extrinsics(invert_extrinsics(extrinsics))
    torch.testing.assert_close(back, extrinsics)


def test_batched_unprojection_matches_per_frame():
    depth = torch.rand(2, 3, 4, 5) + 0.5
    intrinsics = torch.eye(3).repeat(2, 3, 1, 1) * torch.tensor([7.0, 8.0, 1.0])[:, None]
    intrinsics[..., 0, 2], intrinsics[..., 1, 2] = 2.0, 1.5
    extrinsics = torch.cat([torch.eye(3).repeat(2, 3, 1, 1), torch.rand(2, 3, 3, 1)], dim=-1)
    batched = depth_to_world_points(depth, extrinsics, intrinsics)
    single = depth_to_world_points(depth[1, 2], extrinsics[1, 2], intrinsics[1, 2])
    torch.testing.assert_close(batched[1, 2], single)


def test_intrinsics_under_resize_keep_the_image_centre():
    k = torch.tensor([[500.0, 0, 319.5], [0, 500.0, 239.5], [0, 0, 1.0]])
    scaled = scale_intrinsics(k, 0.5, 0.25)
    # The centre of a 640x480 image (319.5, 239.5) is the centre of a 320x120 image (159.5, 59.5).
    torch.testing.assert_close(scaled, torch.tensor([[250.0, 0, 159.5], [0, 125.0, 59.5], [0, 0, 1.0]]))
    shifted = shift_intrinsics(k, -10.0, 7.0)
    torch.testing.assert_close(shifted[:2, 2], torch.tensor([309.5, 246.5]))
