"""InferenceEngine: a window of camera images in, host-side predictions out. No ROS here.

The engine owns the device and precision choice, preprocessing and the model call, and times
each stage so callers (the node, the CLI, benchmarks) report where the time goes.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Hashable, Sequence

import numpy as np
import torch

from .encoder_cache import EncoderCache
from .geometry import depth_to_world_points
from .model import VGGT
from .preprocess import ImageTransform, Mode, preprocess_images
from .timing import StageTimer

LOG = logging.getLogger(__name__)
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when present; an explicit CUDA device that is absent is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ValueError(f"device {name!r} is not a torch device (use auto, cpu, cuda or cuda:N)") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available (use auto or cpu)")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device {name!r} is not supported (use auto, cpu, cuda or cuda:N)")
    return device


def resolve_precision(name: str, device: torch.device) -> torch.dtype:
    """'auto': bf16 autocast on CUDA (fp16 where bf16 is missing), fp32 on the CPU."""
    if name == "auto":
        if device.type != "cuda":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if name not in PRECISIONS:
        raise ValueError(f"precision {name!r} unknown (use auto, {', '.join(PRECISIONS)})")
    return PRECISIONS[name]


@dataclass(frozen=True)
class EngineConfig:
    device: str = "auto"
    precision: str = "auto"
    mode: Mode = "crop"
    heads: tuple[str, ...] = ("camera", "depth")
    encoder_cache: int = 0  # frames whose encoder tokens are kept for later windows (0 = off)


@dataclass
class Predictions:
    """Host-side results for one window; arrays are per frame in the model's pixel grid."""

    images: np.ndarray  # [S, H, W, 3] uint8, the model's input
    depth: np.ndarray  # [S, H, W] float32, up to scale
    depth_conf: np.ndarray  # [S, H, W] float32
    extrinsics: np.ndarray | None  # [S, 3, 4] camera-from-world, world = frame 0's camera
    intrinsics: np.ndarray | None  # [S, 3, 3] of the model's pixel grid
    transforms: list[ImageTransform]
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    # With an MoE depth head (None otherwise):
    winner: np.ndarray | None = None  # [S, H, W] uint8 index of the highest-weight expert
    gate_entropy: np.ndarray | None = None  # [S, H, W] float32, nats
    expert_spread: np.ndarray | None = None  # [S, H, W] float32, max / min expert depth - 1
    num_experts: int = 0

    def world_points(self) -> np.ndarray:
        """[S, H, W, 3] points in frame 0's camera frame, from depth and predicted cameras."""
        if self.extrinsics is None or self.intrinsics is None:
            raise ValueError("world points need the camera head's predictions")
        points = depth_to_world_points(
            torch.from_numpy(self.depth), torch.from_numpy(self.extrinsics), torch.from_numpy(self.intrinsics)
        )
        return points.numpy()


class InferenceEngine:
    def __init__(self, model: VGGT, config: EngineConfig = EngineConfig()) -> None:
        missing = [h for h in config.heads if h not in model.config.heads]
        if "depth" not in config.heads or missing:
            raise ValueError(f"engine heads {config.heads} must include depth and be built by the model ({model.config.heads})")
        self.config = config
        self.device = resolve_device(config.device)
        self.dtype = resolve_precision(config.precision, self.device)
        self.model = model.to(self.device).eval()
        self.target = model.config.img_size
        self.cache = EncoderCache(config.encoder_cache) if config.encoder_cache > 0 else None

    @property
    def description(self) -> str:
        return f"{self.device} {str(self.dtype).removeprefix('torch.')}"

    @torch.inference_mode()
    def run(self, images: Sequence[np.ndarray], keys: Sequence[Hashable] | None = None) -> Predictions:
        """images: RGB uint8 HxWx3 (or grey HxW) arrays, one per frame, frame 0 the reference.
        `keys` name the frames (camera and stamp) for the encoder cache; without them (or with the
        cache off) every frame is encoded."""
        timer = StageTimer(self.device)
        with timer.stage("preprocess"):
            batch, transforms = preprocess_images(images, self.config.mode, self.target, self.device)
        autocast = torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32)
        with autocast:
            patches = None
            if self.cache is not None and keys is not None:
                with timer.stage("encoder"):
                    patches = self.cache.patches(self.model, batch, keys, transforms)
            out = self.model(batch, heads=self.config.heads, timer=timer, patches=patches)
        with timer.stage("to_host"):
            predictions = Predictions(
                images=(batch * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().cpu().numpy(),
                depth=out.depth[0].float().cpu().numpy(),
                depth_conf=out.depth_conf[0].float().cpu().numpy(),
                extrinsics=None if out.extrinsics is None else out.extrinsics[0].float().cpu().numpy(),
                intrinsics=None if out.intrinsics is None else out.intrinsics[0].float().cpu().numpy(),
                transforms=transforms,
            )
            if out.mixture is not None:
                predictions.winner = out.mixture.winner[0].to(torch.uint8).cpu().numpy()
                predictions.gate_entropy = out.mixture.entropy[0].float().cpu().numpy()
                experts = out.mixture.expert_depth[0].float()  # [S, K, H, W]
                predictions.expert_spread = (experts.amax(dim=1) / experts.amin(dim=1) - 1).cpu().numpy()
                predictions.num_experts = out.mixture.gate_logits.shape[2]
        predictions.timings = dict(timer.seconds)
        return predictions

    def warm_up(self, frames: int = 1, hw: tuple[int, int] = (480, 640)) -> float:
        """Run once on a blank window (kernel selection, allocator growth); returns seconds."""
        blank = [np.zeros((*hw, 3), np.uint8)] * frames
        return sum(self.run(blank).timings.values())
