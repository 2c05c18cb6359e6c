"""Preprocessing sizes, offsets and intrinsics bookkeeping against hand-computed cases."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from moe3d_ros.inference.preprocess import ImageTransform, apply_transform, plan_transform, preprocess_images


def test_crop_mode_landscape_640x480():
    t = plan_transform((480, 640), "crop")
    # 480 * 518 / 640 / 14 = 27.75 -> 28 patches -> 392 rows.
    assert t == ImageTransform(source_hw=(480, 640), resized_hw=(392, 518), offset_xy=(0, 0), model_hw=(392, 518))


def test_crop_mode_portrait_is_centre_cropped():
    t = plan_transform((640, 480), "crop")
    # 640 * 518 / 480 / 14 = 49.33 -> 686 rows, cropped to 518 starting at (686 - 518) // 2 = 84.
    assert t.resized_hw == (686, 518) and t.model_hw == (518, 518) and t.offset_xy == (0, -84)


def test_pad_mode_portrait_is_padded_left_and_right():
    t = plan_transform((640, 480), "pad")
    # The long side (height) -> 518; 480 * 518 / 640 / 14 = 27.75 -> 392 columns, padded by 63 each side.
    assert t.resized_hw == (518, 392) and t.model_hw == (518, 518) and t.offset_xy == (63, 0)
    assert t.content_box() == (0, 518, 63, 455)


def test_python_rounding_as_the_reference():
    # 350 * 518 / 700 / 14 = 18.5 rounds half to even (18), as Python's round() in the reference.
    assert plan_transform((350, 700), "crop").resized_hw == (252, 518)


def test_intrinsics_follow_resize_and_crop():
    k = torch.tensor([[500.0, 0, 319.5], [0, 500.0, 239.5], [0, 0, 1.0]], dtype=torch.float64)
    landscape = plan_transform((480, 640), "crop").intrinsics_to_model(k)
    sx, sy = 518 / 640, 392 / 480
    expected = torch.tensor([[500 * sx, 0, 258.5], [0, 500 * sy, 195.5], [0, 0, 1.0]], dtype=torch.float64)
    torch.testing.assert_close(landscape, expected)
    k_portrait = torch.tensor([[500.0, 0, 239.5], [0, 500.0, 319.5], [0, 0, 1.0]], dtype=torch.float64)
    portrait = plan_transform((640, 480), "crop").intrinsics_to_model(k_portrait)
    # Image centre -> (258.5, (320 * 686/640 - 0.5) - 84) = (258.5, 258.5), the crop's centre.
    torch.testing.assert_close(portrait[:2, 2], torch.tensor([258.5, 258.5], dtype=torch.float64))
    padded = plan_transform((640, 480), "pad").intrinsics_to_model(k_portrait)
    torch.testing.assert_close(padded[:2, 2], torch.tensor([258.5, 258.5], dtype=torch.float64))


@pytest.mark.parametrize("mode, hw", [("crop", (480, 640)), ("crop", (640, 480)), ("pad", (640, 480)), ("pad", (300, 1000))])
def test_pixel_and_intrinsics_mappings_invert(mode, hw):
    t = plan_transform(hw, mode)
    u, v = torch.tensor([0.0, 100.0, 333.3]), torch.tensor([5.0, 17.0, 250.0])
    back_u, back_v = t.model_to_source(*t.source_to_model(u, v))
    torch.testing.assert_close(back_u, u)
    torch.testing.assert_close(back_v, v)
    k = torch.tensor([[400.0, 0, 300.0], [0, 410.0, 200.0], [0, 0, 1.0]], dtype=torch.float64)
    torch.testing.assert_close(t.intrinsics_to_source(t.intrinsics_to_model(k)), k)


def test_a_pixel_lands_where_the_intrinsics_say():
    """A 3-D point projects to model pixels consistently with the mapped intrinsics."""
    t = plan_transform((640, 480), "crop")
    k = torch.tensor([[500.0, 0, 239.5], [0, 520.0, 319.5], [0, 0, 1.0]], dtype=torch.float64)
    point = torch.tensor([0.3, -0.2, 2.0], dtype=torch.float64)
    u_src, v_src = (k @ point)[:2] / point[2]
    u_model, v_model = t.source_to_model(u_src, v_src)
    km = t.intrinsics_to_model(k)
    torch.testing.assert_close(torch.stack([u_model, v_model]), (km @ point)[:2] / point[2])


def test_apply_transform_values():
    image = np.full((640, 480, 3), 40, dtype=np.uint8)
    out = apply_transform(image, plan_transform((640, 480), "pad"))
    assert out.shape == (3, 518, 518) and out.dtype == torch.float32
    torch.testing.assert_close(out[:, :, 63:455], torch.full((3, 518, 392), 40 / 255))
    torch.testing.assert_close(out[:, :, :63], torch.ones(3, 518, 63))  # white padding
    torch.testing.assert_close(out[:, :, 455:], torch.ones(3, 518, 63))


def test_identity_size_keeps_pixels_and_grey_is_replicated():
    grey = (np.arange(392 * 518) % 251).astype(np.uint8).reshape(392, 518)
    out = apply_transform(grey, plan_transform((392, 518), "crop"))
    for c in range(3):
        torch.testing.assert_close(out[c], torch.from_numpy(grey).float() / 255)


def test_crop_takes_the_centre_rows():
    image = np.zeros((1036, 518, 3), dtype=np.uint8)  # no resize: 518 wide already
    image[259:777] = 255
    out = apply_transform(image, plan_transform((1036, 518), "crop"))
    assert out.shape == (3, 518, 518) and torch.all(out == 1.0)


def test_window_of_mixed_sizes_is_padded_to_the_largest():
    images = [np.zeros((480, 640, 3), np.uint8), np.zeros((360, 640, 3), np.uint8)]
    batch, transforms = preprocess_images(images, "crop")
    # 360 * 518 / 640 / 14 = 20.8 -> 294 rows, centred in 392: 49 rows of white above.
    assert batch.shape == (2, 3, 392, 518)
    assert transforms[1].offset_xy == (0, 49) and transforms[1].model_hw == (392, 518)
    assert torch.all(batch[1, :, :49] == 1.0) and torch.all(batch[1, :, 49:343] == 0.0)


@pytest.mark.parametrize("bad", [np.zeros((0, 10, 3), np.uint8), np.zeros((10, 10, 4), np.uint8), np.zeros((4, 4, 3), np.int32)])
def test_bad_images_are_clear_errors(bad):
    with pytest.raises(ValueError):
        preprocess_images([bad])
    with pytest.raises(ValueError, match="no images"):
        preprocess_images([])
