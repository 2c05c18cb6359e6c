"""Blur as a condition of the camera images, ground truth untouched: what motion and focus do to
a robot's frames, so that depth at boundaries is measured where it matters.

- Gaussian (defocus): `gaussian_blur(image, sigma)` with sigma in pixels.
- Motion: each frame smeared along its own image motion towards the next frame (the last
  frame: away from the one before), from the true depth and poses. The per-pixel motion vectors
  are scaled so that their median length over valid pixels is `length` pixels: near surfaces
  smear more than far ones, as in a real exposure during a translation.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from .sequence import RGBDSequence

MOTION_SAMPLES = 9  # positions along each pixel's motion segment that are averaged


@dataclass(frozen=True)
class BlurCondition:
    """Gaussian sigma and motion length in pixels (0: none); both may apply (motion first)."""

    sigma: float = 0.0
    motion: float = 0.0

    def __post_init__(self) -> None:
        if self.sigma < 0 or self.motion < 0:
            raise ValueError(f"blur sigma and motion length must be >= 0 pixels, got {self.sigma} and {self.motion}")

    @property
    def active(self) -> bool:
        return self.sigma > 0 or self.motion > 0

    def describe(self) -> str:
        parts = []
        if self.motion > 0:
            parts.append(f"motion blur {self.motion:g} px")
        if self.sigma > 0:
            parts.append(f"Gaussian blur {self.sigma:g} px")
        return ", ".join(parts) or "sharp"

    def apply(self, seq: RGBDSequence) -> RGBDSequence:
        """`seq` with blurred images (a new sequence; depth, validity and cameras unchanged)."""
        if not self.active:
            return seq
        images = seq.images
        if self.motion > 0:
            images = np.stack([motion_blur(images[i], image_motion(seq, i), self.motion, seq.valid[i]) for i in range(len(seq))])
        if self.sigma > 0:
            images = np.stack([gaussian_blur(image, self.sigma) for image in images])
        return replace(seq, images=images)


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """[H, W, C] uint8 image blurred by a Gaussian of `sigma` pixels (kernel +-3 sigma, edges reflected)."""
    if sigma <= 0:
        return image
    radius = max(1, int(np.ceil(3.0 * sigma)))
    return cv2.GaussianBlur(image, (2 * radius + 1, 2 * radius + 1), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)


def image_motion(seq: RGBDSequence, index: int) -> np.ndarray:
    """[H, W, 2] pixel motion (du, dv) of frame `index`'s surface points into the next frame (the
    last frame: minus its motion into the one before); zero where depth is invalid or a point
    falls behind the other camera. Needs two frames."""
    if len(seq) < 2:
        raise ValueError("motion blur needs at least two frames (each frame is smeared along its motion to the next)")
    other, sign = (index + 1, 1.0) if index + 1 < len(seq) else (index - 1, -1.0)
    height, width = seq.depth.shape[1:]
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    k = seq.intrinsics[index]
    z = np.where(seq.valid[index], seq.depth[index], 0.0).astype(np.float64)
    camera = np.stack([(u - k[0, 2]) / k[0, 0] * z, (v - k[1, 2]) / k[1, 1] * z, z, np.ones_like(z)], axis=-1)
    relative = np.linalg.inv(seq.cam_to_world[other]) @ seq.cam_to_world[index]
    moved = camera @ relative.T
    k2 = seq.intrinsics[other]
    ahead = (moved[..., 2] > 1e-6) & (z > 0)
    safe_z = np.where(ahead, moved[..., 2], 1.0)
    du = np.where(ahead, k2[0, 0] * moved[..., 0] / safe_z + k2[0, 2] - u, 0.0)
    dv = np.where(ahead, k2[1, 1] * moved[..., 1] / safe_z + k2[1, 2] - v, 0.0)
    return sign * np.stack([du, dv], axis=-1)


def motion_blur(image: np.ndarray, motion: np.ndarray, length: float, valid: np.ndarray | None = None) -> np.ndarray:
    """Each pixel the mean of the image along its motion segment (centred on the pixel), the
    motion scaled so that its median length over `valid` pixels is `length` pixels."""
    magnitude = np.linalg.norm(motion, axis=-1)
    mask = (magnitude > 0) if valid is None else (valid & (magnitude > 0))
    if length <= 0 or not mask.any():
        return image
    step = motion * (length / float(np.median(magnitude[mask])))
    height, width = image.shape[:2]
    v, u = np.mgrid[0:height, 0:width].astype(np.float32)
    total = np.zeros(image.shape, dtype=np.float32)
    for t in np.linspace(-0.5, 0.5, MOTION_SAMPLES):
        map_u = (u + t * step[..., 0]).astype(np.float32)
        map_v = (v + t * step[..., 1]).astype(np.float32)
        total += cv2.remap(image, map_u, map_v, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT).astype(np.float32)
    return np.clip(np.rint(total / MOTION_SAMPLES), 0, 255).astype(np.uint8)
