"""DINOv2-style ViT with register tokens: encodes every frame on its own into patch tokens."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import VGGTConfig
from .layers import Block, BlockSpec


class PatchEmbed(nn.Module):
    """Non-overlapping patches to tokens; with `stem` channels, two 3x3 convs at full resolution
    first, so a token sees local edges and shading, not only a linear map of its pixels."""

    def __init__(self, patch_size: int, dim: int, stem: int = 0) -> None:
        super().__init__()
        self.stem = None
        if stem:
            self.stem = nn.Sequential(nn.Conv2d(3, stem, 3, padding=1), nn.GELU(), nn.Conv2d(stem, stem, 3, padding=1), nn.GELU())
        self.proj = nn.Conv2d(stem or 3, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, images: Tensor) -> Tensor:
        if self.stem is not None:
            images = self.stem(images)
        return self.proj(images).flatten(2).transpose(1, 2)


class Encoder(nn.Module):
    """Patchify, prepend cls, add position embedding, insert registers, run blocks, final norm."""

    def __init__(self, cfg: VGGTConfig) -> None:
        super().__init__()
        enc, dim = cfg.encoder, cfg.embed_dim
        self.patch_size = cfg.patch_size
        self.grid = enc.pos_embed_grid
        self.num_registers = enc.num_register_tokens
        self.patch_embed = PatchEmbed(cfg.patch_size, dim, enc.conv_stem)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.grid**2, dim))
        self.register_tokens = nn.Parameter(torch.zeros(1, self.num_registers, dim))
        # Unused at inference; kept because the published checkpoint carries it.
        self.mask_token = nn.Parameter(torch.zeros(1, dim))
        spec = BlockSpec(dim, enc.num_heads, enc.mlp_ratio, enc.layerscale_init, norm_eps=1e-6)
        self.blocks = nn.ModuleList(Block(spec) for _ in range(enc.depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def position_embedding(self, grid_h: int, grid_w: int) -> Tensor:
        """[1, 1 + grid_h*grid_w, C]; the pretraining grid is resized bicubic with antialias in fp32."""
        if (grid_h, grid_w) == (self.grid, self.grid):
            return self.pos_embed
        pos = self.pos_embed.float()
        patch = pos[:, 1:].reshape(1, self.grid, self.grid, -1).permute(0, 3, 1, 2)
        patch = F.interpolate(patch, size=(grid_h, grid_w), mode="bicubic", antialias=True, align_corners=False)
        patch = patch.permute(0, 2, 3, 1).reshape(1, grid_h * grid_w, -1)
        return torch.cat([pos[:, :1], patch], dim=1).to(self.pos_embed.dtype)

    def forward(self, images: Tensor) -> Tensor:
        """images: [N, 3, H, W] normalised -> patch tokens [N, H/p * W/p, C]."""
        grid_h, grid_w = images.shape[-2] // self.patch_size, images.shape[-1] // self.patch_size
        x = self.patch_embed(images)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = x + self.position_embedding(grid_h, grid_w).to(x.dtype)
        registers = self.register_tokens.expand(x.shape[0], -1, -1)
        x = torch.cat([x[:, :1], registers, x[:, 1:]], dim=1)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)[:, 1 + self.num_registers :]
