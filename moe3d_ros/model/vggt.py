"""The assembled VGGT model: aggregator plus the heads the config builds."""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from ..timing import StageTimer
from .aggregator import Aggregator
from .config import VGGTConfig
from .geometry import pose_encoding_to_cameras
from .heads import CameraHead, DPTHead
from .heads.dpt_head import activate_depth, activate_points
from .heads.moe_head import MixtureOutput, MoEDepthHead


@dataclass
class VGGTOutput:
    """What one forward pass produced; fields of heads that did not run are None.

    Shapes: B batch, S frames, H x W the model's input size. Extrinsics are camera-from-world
    with the world frame = the first frame's camera; intrinsics refer to the model's input pixels.
    """

    pose_enc: Tensor | None = None  # [B, S, 9]
    pose_enc_list: list[Tensor] = field(default_factory=list)  # one [B, S, 9] per iteration
    extrinsics: Tensor | None = None  # [B, S, 3, 4]
    intrinsics: Tensor | None = None  # [B, S, 3, 3]
    depth: Tensor | None = None  # [B, S, H, W], up to scale
    depth_conf: Tensor | None = None  # [B, S, H, W], >= 1
    world_points: Tensor | None = None  # [B, S, H, W, 3] from the point head
    world_points_conf: Tensor | None = None  # [B, S, H, W]
    mixture: MixtureOutput | None = None  # experts and gate, with the MoE depth head


class VGGT(nn.Module):
    def __init__(self, cfg: VGGTConfig) -> None:
        super().__init__()
        self.config = cfg
        self.aggregator = Aggregator(cfg)
        self.camera_head = CameraHead(cfg) if "camera" in cfg.heads else None
        self.depth_head: DPTHead | None = None
        if "depth" in cfg.heads:
            self.depth_head = MoEDepthHead(cfg) if cfg.depth_head == "moe" else DPTHead(cfg, output_dim=2)
        self.point_head = DPTHead(cfg, output_dim=4) if "point" in cfg.heads else None

    @property
    def head_dtype(self) -> torch.dtype:
        """The precision of the heads' weights (the first head's)."""
        heads = [head for head in self.children() if head is not self.aggregator]
        return next(p for head in heads for p in head.parameters()).dtype

    def check_input(self, images: Tensor, heads: tuple[str, ...]) -> Tensor:
        """Validate and return images as [B, S, 3, H, W]."""
        missing = [h for h in heads if h not in self.config.heads]
        if missing or not heads:
            raise ValueError(f"heads {list(heads)} requested; this model builds {list(self.config.heads)}")
        if images.ndim == 4:
            images = images.unsqueeze(0)
        if images.ndim != 5 or images.shape[2] != 3:
            raise ValueError(f"images must be [S, 3, H, W] or [B, S, 3, H, W], got {tuple(images.shape)}")
        if not images.is_floating_point():
            raise ValueError(f"images must be floating point in [0, 1], got {images.dtype}")
        p = self.config.patch_size
        if images.shape[-1] % p or images.shape[-2] % p or images.shape[1] == 0:
            raise ValueError(f"image height and width must be positive multiples of {p}, got {tuple(images.shape[-2:])}")
        return images

    def forward(
        self, images: Tensor, heads: tuple[str, ...] = ("camera", "depth"), timer: StageTimer | None = None,
        patches: Tensor | None = None,
    ) -> VGGTOutput:
        """images: [S, 3, H, W] or [B, S, 3, H, W] in [0, 1]; runs only the requested heads.

        `timer`, when given, receives the time of the aggregator and of each head. `patches`, the
        encoder's tokens of these images (`aggregator.encode`), skips the encoder.
        """
        images = self.check_input(images, tuple(heads))
        timer = timer or StageTimer(images.device, enabled=False)  # no host synchronisation unless timed
        image_hw = (images.shape[-2], images.shape[-1])
        with timer.stage("aggregator"):
            tokens = self.aggregator(images, self.config.layers_for(tuple(heads)), patches)
        patch_start = self.aggregator.patch_start_idx
        out = VGGTOutput()
        # Heads run in their weights' precision even under autocast (fp32, as in the reference: their
        # outputs are exp()-activated); a model cast to fp16 as a whole (ONNX fp16 export) stays fp16.
        device_type = images.device.type
        no_autocast = torch.autocast(device_type, enabled=False) if device_type in ("cpu", "cuda") else nullcontext()
        with no_autocast:
            tokens = {k: v.to(self.head_dtype) for k, v in tokens.items()}
            if "camera" in heads:
                with timer.stage("camera_head"):
                    last = tokens[self.config.aggregator.depth - 1]
                    out.pose_enc_list = self.camera_head(last[:, :, 0])
                    out.pose_enc = out.pose_enc_list[-1]
                    out.extrinsics, out.intrinsics = pose_encoding_to_cameras(out.pose_enc, image_hw)
            if "depth" in heads:
                with timer.stage("depth_head"):
                    if isinstance(self.depth_head, MoEDepthHead):
                        out.mixture = self.depth_head.mixture(tokens, patch_start, image_hw, images)
                        out.depth, out.depth_conf = out.mixture.depth, out.mixture.depth_conf
                    else:
                        raw = self.depth_head(tokens, patch_start, image_hw, images)
                        depth, conf = activate_depth(raw.flatten(0, 1))
                        out.depth, out.depth_conf = depth.unflatten(0, raw.shape[:2]), conf.unflatten(0, raw.shape[:2])
            if "point" in heads:
                with timer.stage("point_head"):
                    raw = self.point_head(tokens, patch_start, image_hw, images)
                    points, conf = activate_points(raw.flatten(0, 1))
                    out.world_points = points.unflatten(0, raw.shape[:2])
                    out.world_points_conf = conf.unflatten(0, raw.shape[:2])
        return out
