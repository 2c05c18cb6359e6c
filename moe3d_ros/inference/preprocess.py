"""Camera images of any size -> VGGT input, with the bookkeeping back to camera pixels.

Modes follow the reference preprocessing:
- "crop": width -> 518, height -> round(h * 518 / w / 14) * 14, centre-cropped to 518 if taller.
- "pad":  the longer side -> 518, the other rounded to a multiple of 14, padded white to 518x518.
Resizing is bicubic with antialiasing on 8-bit values, as PIL does in the reference.
A window whose frames end up with different sizes is padded white to the largest, as the
reference does, and each frame's transform records it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..model.geometry import scale_intrinsics, shift_intrinsics

Mode = Literal["crop", "pad"]
PAD_VALUE = 1.0  # white, as the reference


@dataclass(frozen=True)
class ImageTransform:
    """Source image -> model image: resize to `resized_hw`, then place at `offset_xy`.

    A negative offset is a crop, a positive one padding. Pixel coordinates are integers at pixel
    centres (the CameraInfo convention).
    """

    source_hw: tuple[int, int]
    resized_hw: tuple[int, int]
    offset_xy: tuple[int, int]
    model_hw: tuple[int, int]

    @property
    def scale_xy(self) -> tuple[float, float]:
        return self.resized_hw[1] / self.source_hw[1], self.resized_hw[0] / self.source_hw[0]

    def intrinsics_to_model(self, intrinsics: Tensor) -> Tensor:
        """Camera intrinsics [..., 3, 3] of the source image -> those of the model image."""
        sx, sy = self.scale_xy
        return shift_intrinsics(scale_intrinsics(intrinsics, sx, sy), *self.offset_xy)

    def intrinsics_to_source(self, intrinsics: Tensor) -> Tensor:
        """Inverse of intrinsics_to_model (e.g. for intrinsics the model predicted)."""
        sx, sy = self.scale_xy
        shifted = shift_intrinsics(intrinsics, -self.offset_xy[0], -self.offset_xy[1])
        return scale_intrinsics(shifted, 1.0 / sx, 1.0 / sy)

    def model_to_source(self, u: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Model pixel coordinates -> source pixel coordinates."""
        sx, sy = self.scale_xy
        return (u - self.offset_xy[0] + 0.5) / sx - 0.5, (v - self.offset_xy[1] + 0.5) / sy - 0.5

    def source_to_model(self, u: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        sx, sy = self.scale_xy
        return (u + 0.5) * sx - 0.5 + self.offset_xy[0], (v + 0.5) * sy - 0.5 + self.offset_xy[1]

    @property
    def content_hw(self) -> tuple[int, int]:
        """Size of the image content in the model's grid (the depth products' size)."""
        top, bottom, left, right = self.content_box()
        return bottom - top, right - left

    def content_box(self) -> tuple[int, int, int, int]:
        """(top, bottom, left, right) model rows/cols (end exclusive) that hold image content, not padding."""
        top, left = max(self.offset_xy[1], 0), max(self.offset_xy[0], 0)
        bottom = min(self.offset_xy[1] + self.resized_hw[0], self.model_hw[0])
        right = min(self.offset_xy[0] + self.resized_hw[1], self.model_hw[1])
        return top, bottom, left, right


def plan_transform(source_hw: tuple[int, int], mode: Mode = "crop", target: int = 518, patch: int = 14) -> ImageTransform:
    """Sizes and offsets for one image, computed exactly as the reference does (Python rounding)."""
    height, width = source_hw
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got {height}x{width}")
    if mode not in ("crop", "pad"):
        raise ValueError(f"unknown preprocessing mode {mode!r} (use 'crop' or 'pad')")
    if mode == "crop" or width >= height:
        new_w = target
        new_h = round(height * (new_w / width) / patch) * patch
    else:
        new_h = target
        new_w = round(width * (new_h / height) / patch) * patch
    new_h, new_w = max(new_h, patch), max(new_w, patch)
    if mode == "crop":
        model_h = min(new_h, target)
        return ImageTransform((height, width), (new_h, new_w), (0, -((new_h - model_h) // 2)), (model_h, new_w))
    pad_top, pad_left = (target - new_h) // 2, (target - new_w) // 2
    return ImageTransform((height, width), (new_h, new_w), (pad_left, pad_top), (target, target))


def _as_uint8_chw(image: np.ndarray | Tensor, device: torch.device | str) -> Tensor:
    """HxWx3 / HxW, uint8 or float in [0, 1] -> [3, H, W] uint8 on `device`."""
    tensor = torch.as_tensor(image)
    if tensor.ndim == 2:
        tensor = tensor[..., None].expand(-1, -1, 3)
    if tensor.ndim != 3 or tensor.shape[-1] != 3 or tensor.shape[0] == 0 or tensor.shape[1] == 0:
        raise ValueError(f"expected a non-empty HxWx3 RGB or HxW grey image, got shape {tuple(tensor.shape)}")
    if tensor.is_floating_point():
        tensor = (tensor.clamp(0, 1) * 255).round().to(torch.uint8)
    elif tensor.dtype != torch.uint8:
        raise ValueError(f"image dtype must be uint8 or floating point in [0,1], got {tensor.dtype}")
    return tensor.to(device).permute(2, 0, 1)


def _resize_bicubic_aa(pixels: Tensor, size: tuple[int, int]) -> Tensor:
    """[3, H, W] uint8 -> [3, h, w] uint8, antialiased bicubic as PIL does (a = -0.5).

    On the CPU torch resizes uint8 directly (fixed point, within 1-2 grey levels of PIL and
    about 3x faster than in float); elsewhere in float, rounded back to 8 bits.
    """
    if pixels.device.type == "cpu":
        batch = pixels[None].contiguous(memory_format=torch.channels_last)
        return F.interpolate(batch, size=size, mode="bicubic", antialias=True, align_corners=False)[0]
    resized = F.interpolate(pixels[None].float(), size=size, mode="bicubic", antialias=True, align_corners=False)[0]
    return resized.round().clamp(0, 255).to(torch.uint8)


def apply_transform(image: np.ndarray | Tensor, transform: ImageTransform, device: torch.device | str = "cpu") -> Tensor:
    """One image -> [3, model_h, model_w] float in [0, 1]."""
    pixels = _as_uint8_chw(image, device)
    if tuple(pixels.shape[-2:]) != transform.source_hw:
        raise ValueError(f"image is {tuple(pixels.shape[-2:])}, transform expects {transform.source_hw}")
    if transform.resized_hw != transform.source_hw:
        pixels = _resize_bicubic_aa(pixels, transform.resized_hw)
    top, bottom, left, right = transform.content_box()
    src_top, src_left = top - transform.offset_xy[1], left - transform.offset_xy[0]
    content = pixels[:, src_top : src_top + bottom - top, src_left : src_left + right - left]
    padded = (bottom - top, right - left) != transform.model_hw
    out = torch.full((3, *transform.model_hw), PAD_VALUE, device=pixels.device) if padded else torch.empty((3, *transform.model_hw), device=pixels.device)
    torch.div(content, 255.0, out=out[:, top:bottom, left:right])
    return out


def preprocess_images(
    images: Sequence[np.ndarray | Tensor], mode: Mode = "crop", target: int = 518, device: torch.device | str = "cpu"
) -> tuple[Tensor, list[ImageTransform]]:
    """A window of images -> ([S, 3, H, W] in [0, 1], one transform per image)."""
    if not images:
        raise ValueError("no images to preprocess")
    transforms = [plan_transform(tuple(np.shape(img)[:2]), mode, target) for img in images]
    model_h = max(t.model_hw[0] for t in transforms)
    model_w = max(t.model_hw[1] for t in transforms)
    transforms = [_pad_to(t, model_h, model_w) for t in transforms]
    batch = torch.stack([apply_transform(img, t, device) for img, t in zip(images, transforms)])
    return batch, transforms


def _pad_to(transform: ImageTransform, height: int, width: int) -> ImageTransform:
    """Centre a smaller model image inside height x width (reference: white padding)."""
    extra_h, extra_w = height - transform.model_hw[0], width - transform.model_hw[1]
    if extra_h == 0 and extra_w == 0:
        return transform
    offset = (transform.offset_xy[0] + extra_w // 2, transform.offset_xy[1] + extra_h // 2)
    return ImageTransform(transform.source_hw, transform.resized_hw, offset, (height, width))
