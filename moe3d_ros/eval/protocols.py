"""Evaluation protocols: which frames, at which resolution, scored how.

- synthetic: the package's generated scenes with fixed held-out seeds (never drawn in training,
  whose seeds stay below SYNTHETIC_EVAL_SEED0); windows of S frames; depth, boundary and
  flying-point metrics per frame and Acc/Comp/NC on each window.
- 7scenes / nrgbd: the pi3 multi-view protocol at 518 px width: every 200th / 500th frame
  (sparse) or every 40th / 100th (dense) of each test sequence in one window; Acc/Comp/NC after
  Umeyama + ICP, only pixels with valid ground truth, no confidence filtering.
- nyu / sintel: single images; the prediction is resized to the ground truth and scaled per
  image (NYU: official test split and Eigen crop; Sintel: depth capped at 70 m).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from ..data.blur import BlurCondition, gaussian_blur
from ..data.readers import read_7scenes, read_nrgbd
from ..data.sources import DatasetError
from ..data.synthetic import SyntheticConfig, generate_sequence
from ..data.windows import make_window
from ..inference.preprocess import preprocess_images
from .datasets import NYU_INTRINSICS, nrgbd_frames, read_nyu, read_sintel, seven_scenes_frames
from .runner import Window

SYNTHETIC_EVAL_SEED0 = 900_000
SINTEL_MAX_DEPTH = 70.0
PROTOCOLS = ("synthetic", "7scenes", "nrgbd", "nyu", "sintel")
MULTI_VIEW = {"synthetic": True, "7scenes": True, "nrgbd": True, "nyu": False, "sintel": False}
# Corresponding points per window for Acc/Comp/NC (random, fixed seed): nearest-neighbour search
# and ICP on every pixel of a dense window would take minutes per window on a CPU.
RECONSTRUCTION_POINTS = {"synthetic": 20_000, "7scenes": 100_000, "nrgbd": 100_000}


@dataclass(frozen=True)
class SyntheticProtocol:
    scenes: int = 8
    frames: int = 4
    height: int = 168
    width: int = 224
    seed0: int = SYNTHETIC_EVAL_SEED0
    style: str = "natural"  # the generator's texture style (data.synthetic.textures.TEXTURE_STYLES)
    world: str = "plausible"  # how objects and cameras are placed (data.synthetic.config.WORLDS)


def _window_from_sequence(name: str, seq, target_width: int, blur: BlurCondition = BlurCondition()) -> Window:
    window = make_window(blur.apply(seq), target_width=target_width, augment=None, rng=np.random.default_rng(0))
    return Window(
        name=name,
        images=window.images,
        depth=window.depth.numpy(),
        valid=window.valid.numpy(),
        extrinsics=window.extrinsics.numpy(),
        intrinsics=window.intrinsics.numpy(),
    )


def synthetic_windows(spec: SyntheticProtocol, target_width: int, blur: BlurCondition = BlurCondition()) -> Iterator[Window]:
    config = SyntheticConfig(height=spec.height, width=spec.width, texture_style=spec.style, world=spec.world)
    for index in range(spec.scenes):
        seed = spec.seed0 + index
        yield _window_from_sequence(f"synthetic_{seed}", generate_sequence(seed, spec.frames, config), target_width, blur)


def multiview_windows(kind: str, root: Path, density: str, target_width: int,
                      blur: BlurCondition = BlurCondition()) -> Iterator[Window]:
    """7-Scenes (every scene's test sequences) or NRGBD (one scene or a folder of scenes), frames
    chosen by the pi3 protocol, each sequence one window."""
    if kind == "7scenes":
        scenes = sorted(p for p in Path(root).iterdir() if p.is_dir())
        sources = [source for scene in scenes for source in read_7scenes(scene, "test")]
        pick = seven_scenes_frames
    else:
        root = Path(root)
        scenes = [root] if (root / "poses.txt").exists() else sorted(p for p in root.iterdir() if p.is_dir())
        sources = [read_nrgbd(scene) for scene in scenes]
        pick = nrgbd_frames
    if not sources:
        raise DatasetError(f"{root}: no {kind} scenes found")
    for source in sources:
        yield _window_from_sequence(source.name, source.load(pick(len(source), density)), target_width, blur)


def monocular_windows(kind: str, root: Path, target_width: int, sigma: float = 0.0) -> Iterator[Window]:
    """NYU-v2 test split or Sintel: one image per window; ground truth stays at its own
    resolution and the prediction is resized to it when scored. `sigma`: Gaussian blur of the
    image in pixels (motion blur needs a second view)."""
    dataset = read_nyu(root) if kind == "nyu" else read_sintel(root)
    for sample in dataset:
        images, transforms = preprocess_images([gaussian_blur(sample.image, sigma)], "crop", target_width)
        if transforms[0].offset_xy != (0, 0):
            raise DatasetError(f"{sample.name}: portrait images are cropped by the model's preprocessing; {kind} expects landscape")
        yield Window(
            name=sample.name,
            images=images,
            depth=sample.depth[None],
            valid=sample.valid[None],
            extrinsics=None,
            intrinsics=(sample.intrinsics if sample.intrinsics is not None else NYU_INTRINSICS)[None],
            max_depth=SINTEL_MAX_DEPTH if kind == "sintel" else None,
        )
