"""2-D rotary position embedding as VGGT's aggregator uses it.

Each head's channels split in two halves: the first rotates with the patch row, the second with
the patch column. Inside a half, channel j pairs with channel j + half/2 ("rotate half").
"""
from __future__ import annotations

import torch
from torch import Tensor


class RotaryTables:
    """cos/sin tables for a fixed token layout, computed once and shared by every block."""

    def __init__(self, positions: Tensor, head_dim: int, base: float) -> None:
        """positions: [N, 2] integer (row, col) per token."""
        half = head_dim // 2
        inv_freq = 1.0 / (base ** (torch.arange(0, half, 2, device=positions.device).float() / half))
        angles = positions.float()[..., None] * inv_freq  # [N, 2, half/2]
        self.cos = torch.cat([angles, angles], dim=-1).flatten(-2).cos()  # [N, head_dim]: row half, col half
        # rotate-half as a swap of the two quarters of each half times a sign: (-x2, x1) = sign * (x2, x1)
        sin = angles.sin()
        self.signed_sin = torch.cat([-sin, sin], dim=-1).flatten(-2)

    def apply(self, x: Tensor) -> Tensor:
        """x: [..., N, head_dim] with the table's N."""
        swapped = x.unflatten(-1, (2, 2, -1)).flip(-2).flatten(-3)
        return torch.addcmul(x * self.cos.to(x.dtype), swapped, self.signed_sin.to(x.dtype))


def patch_positions(grid_h: int, grid_w: int, num_special: int, device: torch.device) -> Tensor:
    """(row, col) per token of one frame: special tokens at (0, 0), patch (r, c) at (r+1, c+1)."""
    rows = torch.arange(grid_h, device=device).repeat_interleave(grid_w) + 1
    cols = torch.arange(grid_w, device=device).repeat(grid_h) + 1
    patches = torch.stack([rows, cols], dim=-1)
    special = torch.zeros(num_special, 2, dtype=patches.dtype, device=device)
    return torch.cat([special, patches], dim=0)
