"""Training windows: S frames of one scene exactly as the model sees them, with aligned ground truth.

The model input is made by the inference preprocessing itself (`preprocess_images`, mode
"crop"), so training and inference see the same pixels for the same camera image. Ground-truth
depth is carried onto the model's pixel grid by nearest-neighbour sampling at the source
position of each model pixel (`ImageTransform.model_to_source`): every output depth is a depth
the sensor measured, never a blend across an occlusion edge, which is what a boundary-sharp
depth head must learn. Intrinsics follow the same transform; extrinsics are camera-from-world
with the world = frame 0's camera (`relative_to_first`), the reference frame VGGT predicts in.

Randomness comes only from a numpy Generator passed in, and `WindowSampler` seeds one per
(seed, step, rank), so a training run can be resumed at any step and reproduce its data exactly.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, fields
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..inference.preprocess import PAD_VALUE, ImageTransform, preprocess_images
from ..model.geometry import relative_to_first, shift_intrinsics
from .blur import gaussian_blur
from .sequence import RGBDSequence
from .sources import SequenceSource
from .synthetic import SyntheticConfig, generate_sequence

__all__ = [
    "Augmentation",
    "SyntheticWindows",
    "TrainingWindow",
    "WindowSampler",
    "make_window",
    "sample_window_indices",
]

Stride = int | tuple[int, int]
_LUMA = np.array([0.299, 0.587, 0.114])  # Rec. 601 weights: grey value of an RGB colour


def _stride_range(stride: Stride) -> tuple[int, int]:
    """A fixed stride or an inclusive (min, max) range (a tuple, or a list from a config file) -> (min, max)."""
    bounds = [stride] * 2 if isinstance(stride, (int, np.integer)) else list(stride) if isinstance(stride, (tuple, list)) else []
    integers = len(bounds) == 2 and all(isinstance(b, (int, np.integer)) for b in bounds)
    if not integers or not 1 <= bounds[0] <= bounds[1]:
        raise ValueError(f"stride must be an int >= 1 or a (min, max) range with 1 <= min <= max, got {stride!r}")
    return int(bounds[0]), int(bounds[1])


def sample_window_indices(
    num_frames: int, window: int, stride: Stride, rng: np.random.Generator, random_order: bool = True
) -> np.ndarray:
    """Frame indices [window] of one training window; element 0 is the reference frame.

    The frames are `stride` apart (drawn uniformly from an inclusive (min, max) range, and
    shrunk when the sequence is too short for it), starting at a uniformly drawn frame. With
    `random_order` the non-reference frames are shuffled, so the model cannot rely on time order.
    """
    lo, hi = _stride_range(stride)
    if window < 1:
        raise ValueError(f"window must be at least 1 frame, got {window}")
    if num_frames < window:
        raise ValueError(f"a sequence of {num_frames} frames is too short for a window of {window}")
    step = int(rng.integers(lo, hi + 1))
    if window > 1:
        step = min(step, (num_frames - 1) // (window - 1))
    start = int(rng.integers(0, num_frames - (window - 1) * step))
    indices = start + step * np.arange(window)
    if random_order:
        indices[1:] = rng.permutation(indices[1:])
    return indices


@dataclass(frozen=True)
class Augmentation:
    """Geometry-consistent augmentation, applied to each frame before the model transform.

    - Zoom: crop a random window of 1/zoom the image size (zoom uniform in [1, max_zoom], same
      aspect ratio, random position); the intrinsics are shifted by the crop, so the geometry
      stays exact. Each frame draws its own zoom, as if its focal length varied.
    - Colour: brightness, contrast and saturation factors uniform in [1 - x, 1 + x] and a hue
      rotation about the grey axis of up to `hue` turns, drawn per frame.
    - Crop (optional): the zoomed window covers only `crop` (height, width) camera pixels at a
      random position, so with a model width of `crop[1]` the model sees a part of the frame at
      its native scale (zoom aside): the edges it learns are as wide as at full size, for the
      cost of the crop's pixels.
    - Blur (optional): a Gaussian of sigma uniform in [0, max_blur] camera pixels, drawn per
      frame, on the cropped image (depth untouched): the defocus and motion a robot's camera
      sees, which `moe3d-eval --blur` measures.
    No flips: a mirrored image is not the view of any rigid camera motion.
    """

    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.02
    max_zoom: float = 1.25
    crop: tuple[int, int] | None = None
    max_blur: float = 0.0

    def __post_init__(self) -> None:
        if not all(0 <= x < 1 for x in (self.brightness, self.contrast, self.saturation)):
            raise ValueError("brightness, contrast and saturation must be in [0, 1) (factors in [1 - x, 1 + x])")
        if not 0 <= self.hue <= 0.5 or self.max_zoom < 1:
            raise ValueError("hue must be in [0, 0.5] turns and max_zoom >= 1")
        if self.crop is not None and min(self.crop) < 1:
            raise ValueError(f"crop must be (height, width) in pixels, got {self.crop}")
        if self.max_blur < 0:
            raise ValueError(f"max_blur must be >= 0 pixels, got {self.max_blur}")

    def apply(
        self, image: np.ndarray, depth: np.ndarray, valid: np.ndarray, intrinsics: Tensor, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, Tensor]:
        """One frame (image uint8 [H, W, 3], depth, valid, K) -> the augmented frame (a crop of it)."""
        height, width = depth.shape
        zoom = rng.uniform(1.0, self.max_zoom)
        view_h, view_w = (min(height, self.crop[0]), min(width, self.crop[1])) if self.crop else (height, width)
        crop_h, crop_w = max(1, round(view_h / zoom)), max(1, round(view_w / zoom))
        top, left = int(rng.integers(0, height - crop_h + 1)), int(rng.integers(0, width - crop_w + 1))
        rows, cols = slice(top, top + crop_h), slice(left, left + crop_w)
        image = image[rows, cols]
        if self.max_blur > 0:  # drawn only when on, so runs without blur keep their data stream
            image = gaussian_blur(image, rng.uniform(0.0, self.max_blur))
        image = self._jitter(image, rng)
        return image, depth[rows, cols], valid[rows, cols], shift_intrinsics(intrinsics, -left, -top)

    def _jitter(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Brightness, contrast, saturation and hue as one affine colour map x -> M x + c."""
        ranges = (self.brightness, self.contrast, self.saturation)
        brightness, contrast, saturation = (rng.uniform(1.0 - x, 1.0 + x) for x in ranges)
        angle = rng.uniform(-self.hue, self.hue) * 2.0 * math.pi
        axis = np.full(3, 1.0 / math.sqrt(3.0))  # the grey axis: hue rotation leaves greys unchanged
        cross = np.array([[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]], [-axis[1], axis[0], 0.0]])
        hue = math.cos(angle) * np.eye(3) + math.sin(angle) * cross + (1.0 - math.cos(angle)) * np.outer(axis, axis)
        desaturate = saturation * np.eye(3) + (1.0 - saturation) * np.outer(np.ones(3), _LUMA)
        matrix = hue @ desaturate * (brightness * contrast)
        mean_grey = float(image.reshape(-1, 3).mean(axis=0) @ _LUMA) * brightness
        offset = (1.0 - contrast) * mean_grey  # contrast scales about the mean grey; both maps keep greys grey
        out = image.astype(np.float32) @ matrix.T.astype(np.float32) + np.float32(offset)
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)


@dataclass
class TrainingWindow:
    """One window (or, from `WindowSampler.batch`, a batch of windows with a leading B axis).

    images [S, 3, H, W] float32 in [0, 1], the model input; depth [S, H, W] float32 metres, 0
    where invalid; valid [S, H, W] bool (False in padding and where depth is invalid);
    extrinsics [S, 3, 4] float32 camera-from-world, world = frame 0's camera; intrinsics
    [S, 3, 3] float32 of the model's pixel grid.
    """

    images: Tensor
    depth: Tensor
    valid: Tensor
    extrinsics: Tensor
    intrinsics: Tensor

    @staticmethod
    def stack(windows: Sequence[TrainingWindow]) -> TrainingWindow:
        """Windows -> one batch [B, S, ...]; smaller grids are centre-padded (white, invalid) to the largest."""
        if not windows:
            raise ValueError("no windows to stack")
        height = max(w.images.shape[-2] for w in windows)
        width = max(w.images.shape[-1] for w in windows)
        padded = [w._padded(height, width) for w in windows]
        return TrainingWindow(*(torch.stack([getattr(w, f.name) for w in padded]) for f in fields(TrainingWindow)))

    def _padded(self, height: int, width: int) -> TrainingWindow:
        """This window centred on a height x width grid, as preprocessing pads a smaller frame."""
        extra_h, extra_w = height - self.images.shape[-2], width - self.images.shape[-1]
        if extra_h == 0 and extra_w == 0:
            return self
        pad = (extra_w // 2, extra_w - extra_w // 2, extra_h // 2, extra_h - extra_h // 2)
        return TrainingWindow(
            images=F.pad(self.images, pad, value=PAD_VALUE),
            depth=F.pad(self.depth, pad, value=0.0),
            valid=F.pad(self.valid, pad, value=False),
            extrinsics=self.extrinsics,
            intrinsics=shift_intrinsics(self.intrinsics, extra_w // 2, extra_h // 2),
        )


def make_window(
    seq: RGBDSequence,
    target_width: int = 518,
    augment: Augmentation | None = None,
    rng: np.random.Generator | None = None,
) -> TrainingWindow:
    """All frames of `seq` (frame 0 = reference) -> model input and ground truth on the model grid.

    `target_width` is the model's image size (`VGGTConfig.img_size`: 518 for vggt_1b).
    Augmentation, when given, draws from `rng` and runs on the camera images before the model
    transform, so the model input is what inference would make of such a camera image.
    """
    if augment is not None and rng is None:
        raise ValueError("augmentation needs a random generator (rng)")
    images, depths, valids, intrinsics = [], [], [], []
    for index in range(len(seq)):
        frame = seq.images[index], seq.depth[index], seq.valid[index], torch.from_numpy(seq.intrinsics[index])
        if augment is not None:
            frame = augment.apply(*frame, rng)
        for store, item in zip((images, depths, valids, intrinsics), frame):
            store.append(item)
    batch, transforms = preprocess_images(images, "crop", target_width)
    depth, valid = zip(*(_nearest_onto_grid(d, v, t) for d, v, t in zip(depths, valids, transforms)))
    return TrainingWindow(
        images=batch,
        depth=torch.from_numpy(np.stack(depth)),
        valid=torch.from_numpy(np.stack(valid)),
        extrinsics=relative_to_first(torch.from_numpy(seq.cam_to_world)).float(),
        intrinsics=torch.stack([t.intrinsics_to_model(k) for k, t in zip(intrinsics, transforms)]).float(),
    )


def _nearest_onto_grid(
    depth: np.ndarray, valid: np.ndarray, transform: ImageTransform
) -> tuple[np.ndarray, np.ndarray]:
    """Depth and validity at the source pixel nearest to each model pixel's centre; padding is invalid."""
    out_depth = np.zeros(transform.model_hw, dtype=np.float32)
    out_valid = np.zeros(transform.model_hw, dtype=bool)
    top, bottom, left, right = transform.content_box()
    columns, lines = (torch.arange(a, b, dtype=torch.float64) for a, b in ((left, right), (top, bottom)))
    u, v = transform.model_to_source(columns, lines)
    cols = np.clip(np.floor(u.numpy() + 0.5).astype(np.int64), 0, depth.shape[1] - 1)
    rows = np.clip(np.floor(v.numpy() + 0.5).astype(np.int64), 0, depth.shape[0] - 1)
    sampled = depth[np.ix_(rows, cols)].astype(np.float32)
    ok = valid[np.ix_(rows, cols)] & np.isfinite(sampled) & (sampled > 0)
    out_depth[top:bottom, left:right] = np.where(ok, sampled, np.float32(0.0))
    out_valid[top:bottom, left:right] = ok
    return out_depth, out_valid


@dataclass(frozen=True)
class SyntheticWindows:
    """Synthetic windows rendered on the fly: `generate_sequence(seed, S, config)`, seed drawn from `seeds`.

    The frames of a synthetic sequence are already spaced along its camera path
    (`config.frame_spacing`), so the window is the whole sequence and no stride applies.
    """

    config: SyntheticConfig = SyntheticConfig()
    seeds: Sequence[int] = range(1_000_000)

    def __post_init__(self) -> None:
        if len(self.seeds) == 0:
            raise ValueError("SyntheticWindows needs at least one seed")

    def sequence(self, num_frames: int, rng: np.random.Generator) -> RGBDSequence:
        return generate_sequence(int(self.seeds[int(rng.integers(len(self.seeds)))]), num_frames, self.config)


class WindowSampler:
    """Training windows drawn from sequence sources and/or synthetic scenes, reproducible by step.

    `window(step, rank)` depends only on (seed, step, rank) through
    `np.random.default_rng([seed, step, rank])`, never on what was drawn before, so a resumed
    run reproduces its data exactly and every rank of a distributed run draws its own windows.
    A source is picked with probability proportional to its length (every frame equally likely
    to be a reference); with both real and synthetic data, a window is synthetic with
    probability `synthetic_fraction`. Sources shorter than the window are left out with a warning.
    """

    def __init__(
        self,
        sources: Sequence[SequenceSource] = (),
        *,
        window_size: int,
        stride: Stride = 1,
        target_width: int = 518,
        augment: Augmentation | None = None,
        seed: int = 0,
        random_order: bool = True,
        synthetic: SyntheticWindows | None = None,
        synthetic_fraction: float = 0.5,
    ) -> None:
        _stride_range(stride)
        if window_size < 1:
            raise ValueError(f"window_size must be at least 1 frame, got {window_size}")
        if seed < 0 or not 0.0 <= synthetic_fraction <= 1.0:
            raise ValueError("seed must be >= 0 and synthetic_fraction in [0, 1]")
        if not sources and synthetic is None:
            raise ValueError("WindowSampler got no sequence sources and no SyntheticWindows: nothing to sample from")
        usable = [source for source in sources if len(source) >= window_size]
        if sources and not usable:
            lengths = ", ".join(f"{source.name} ({len(source)})" for source in sources[:5])
            raise ValueError(f"every sequence source is shorter than the window of {window_size} frames: {lengths}")
        if len(usable) < len(sources):
            short = [source.name for source in sources if len(source) < window_size]
            message = f"{len(short)} sequence(s) shorter than the window of {window_size} frames left out: {short[:5]}"
            warnings.warn(message, stacklevel=2)
        self.sources = usable
        self.window_size = window_size
        self.stride = stride
        self.target_width = target_width
        self.augment = augment
        self.seed = seed
        self.random_order = random_order
        self.synthetic = synthetic
        self.synthetic_fraction = synthetic_fraction
        lengths = np.array([len(source) for source in usable], dtype=np.float64)
        self._source_weights = lengths / lengths.sum() if usable else lengths

    def window(self, step: int, rank: int = 0) -> TrainingWindow:
        """The window of (step, rank)."""
        return self._draw(self._rng(step, rank))

    def batch(self, step: int, rank: int = 0, batch_size: int = 1) -> TrainingWindow:
        """`batch_size` windows of (step, rank), stacked [B, S, ...]; window i draws from default_rng([seed, step, rank, i])."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        return TrainingWindow.stack([self._draw(self._rng(step, rank, index)) for index in range(batch_size)])

    def _rng(self, *keys: int) -> np.random.Generator:
        if min(keys) < 0:
            raise ValueError(f"step, rank and batch index must be >= 0, got {keys}")
        return np.random.default_rng([self.seed, *keys])

    def _draw(self, rng: np.random.Generator) -> TrainingWindow:
        use_synthetic = self.synthetic is not None and (not self.sources or rng.random() < self.synthetic_fraction)
        if use_synthetic:
            seq = self.synthetic.sequence(self.window_size, rng)
            seq = seq.select(sample_window_indices(len(seq), self.window_size, 1, rng, self.random_order))
        else:
            source = self.sources[int(rng.choice(len(self.sources), p=self._source_weights))]
            seq = source.load(sample_window_indices(len(source), self.window_size, self.stride, rng, self.random_order))
        return make_window(seq, self.target_width, self.augment, rng)
