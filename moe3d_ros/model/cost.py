"""Parameter and FLOP counts of a configuration, without allocating its weights."""
from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from .config import VGGTConfig
from .vggt import VGGT


def count_params_and_flops(
    cfg: VGGTConfig, image_hw: tuple[int, int] = (518, 518), frames: int = 1, heads: tuple[str, ...] | None = None
) -> tuple[int, int]:
    """(parameters, forward FLOPs) of `cfg` on one window, counted on the meta device.

    FLOPs are torch's count (2 per multiply-add) of matmuls, convolutions and attention.
    """
    with torch.device("meta"):
        model = VGGT(cfg).eval().requires_grad_(False)
        images = torch.empty(1, frames, 3, *image_hw)
        counter = FlopCounterMode(display=False)
        with counter:
            model(images, heads=heads or cfg.heads)
    return sum(p.numel() for p in model.parameters()), counter.get_total_flops()
