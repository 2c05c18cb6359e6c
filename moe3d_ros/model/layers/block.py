"""Pre-norm transformer block with LayerScale, used by the encoder, aggregator and camera trunk."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .attention import Attention
from .rope import RotaryTables


class LayerScale(nn.Module):
    """Per-channel scale of a residual branch."""

    def __init__(self, dim: int, init: float) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), init))

    def residual(self, skip: Tensor, x: Tensor) -> Tensor:
        """skip + gamma * x in one pass over memory."""
        return torch.addcmul(skip, x, self.gamma)


class Mlp(nn.Module):
    def __init__(self, dim_in: int, hidden: int, dim_out: int | None = None) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim_in, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim_out or dim_in)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


@dataclass(frozen=True)
class BlockSpec:
    dim: int
    num_heads: int
    mlp_ratio: float
    layerscale_init: float
    norm_eps: float = 1e-5
    qk_norm: bool = False


class Block(nn.Module):
    def __init__(self, spec: BlockSpec) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(spec.dim, eps=spec.norm_eps)
        self.attn = Attention(spec.dim, spec.num_heads, qk_norm=spec.qk_norm)
        self.ls1 = LayerScale(spec.dim, spec.layerscale_init)
        self.norm2 = nn.LayerNorm(spec.dim, eps=spec.norm_eps)
        self.mlp = Mlp(spec.dim, int(spec.dim * spec.mlp_ratio))
        self.ls2 = LayerScale(spec.dim, spec.layerscale_init)

    def forward(self, x: Tensor, rope: RotaryTables | None = None) -> Tensor:
        x = self.ls1.residual(x, self.attn(self.norm1(x), rope))
        return self.ls2.residual(x, self.mlp(self.norm2(x)))
