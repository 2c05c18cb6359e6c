"""VGGT's aggregator: per-frame encoding, then alternating frame-wise and global attention."""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from .config import VGGTConfig
from .encoder import Encoder
from .layers import Block, BlockSpec, RotaryTables, patch_positions

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Aggregator(nn.Module):
    """Tokens per frame are [camera(1), registers(R), patches]; patches start at 1 + R.

    Step i runs a frame block on [B*S, P, C] and a global block on [B, S*P, C]; its output is
    both results concatenated on channels. Only the steps the caller asks for are kept.
    """

    def __init__(self, cfg: VGGTConfig) -> None:
        super().__init__()
        agg, dim = cfg.aggregator, cfg.embed_dim
        self.patch_size = cfg.patch_size
        self.rope_base = agg.rope_base
        self.head_dim = dim // agg.num_heads
        self.patch_embed = Encoder(cfg)
        # Index 0 of the second axis serves the first (reference) frame, index 1 every other one.
        self.camera_token = nn.Parameter(torch.zeros(1, 2, 1, dim))
        self.register_token = nn.Parameter(torch.zeros(1, 2, agg.num_register_tokens, dim))
        self.patch_start_idx = 1 + agg.num_register_tokens
        self.reset_constants()
        spec = BlockSpec(dim, agg.num_heads, agg.mlp_ratio, agg.layerscale_init, qk_norm=True)
        self.frame_blocks = nn.ModuleList(Block(spec) for _ in range(agg.depth))
        self.global_blocks = nn.ModuleList(Block(spec) for _ in range(agg.depth))
        # Training option: recompute block activations in the backward pass instead of storing them.
        self.gradient_checkpointing = False

    def reset_constants(self) -> None:
        """Normalisation constants as buffers that move with the model: built once, not from Python
        lists per call (which a CUDA graph cannot capture); not saved in checkpoints."""
        device = self.camera_token.device  # meta while a model is only being sized, real once loaded
        self.register_buffer("pixel_mean", torch.tensor(IMAGENET_MEAN, device=device).view(1, 1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(IMAGENET_STD, device=device).view(1, 1, 3, 1, 1), persistent=False)

    def _run(self, block: Block, tokens: Tensor, rope: RotaryTables) -> Tensor:
        if self.gradient_checkpointing and torch.is_grad_enabled():
            return checkpoint(block, tokens, rope, use_reentrant=False)
        return block(tokens, rope)

    def _special_tokens(self, batch: int, frames: int) -> Tensor:
        special = torch.cat([self.camera_token, self.register_token], dim=2)  # [1, 2, 1+R, C]
        # Frame 0 takes the first set, every later frame the second: picked by index rather than by
        # expanding to frames - 1, which a dynamic frame axis (ONNX export) would pin to one value.
        which = torch.arange(frames, device=special.device).clamp(max=1)
        return special[:, which].expand(batch, -1, -1, -1).flatten(0, 1)  # [B*S, 1+R, C]

    def encode(self, images: Tensor) -> Tensor:
        """images: [B, S, 3, H, W] in [0, 1] -> the encoder's patch tokens [B*S, N, C]. The encoder
        sees one frame at a time, so a frame's tokens do not depend on the rest of its window."""
        normalised = (images - self.pixel_mean.to(images.dtype)) / self.pixel_std.to(images.dtype)
        return self.patch_embed(normalised.flatten(0, 1))

    def forward(self, images: Tensor, keep_layers: tuple[int, ...], patches: Tensor | None = None) -> dict[int, Tensor]:
        """images: [B, S, 3, H, W] in [0, 1] -> {step: tokens [B, S, P, 2C]} for steps in keep_layers.
        `patches` ([B*S, N, C], from `encode`) skips the encoder, e.g. for frames encoded before."""
        batch, frames, _, height, width = images.shape
        if patches is None:
            patches = self.encode(images)  # [B*S, N, C]
        tokens = torch.cat([self._special_tokens(batch, frames).to(patches.dtype), patches], dim=1)
        per_frame = tokens.shape[1]
        dim = tokens.shape[-1]

        grid_h, grid_w = height // self.patch_size, width // self.patch_size
        positions = patch_positions(grid_h, grid_w, self.patch_start_idx, images.device)
        frame_rope = RotaryTables(positions, self.head_dim, self.rope_base)
        global_rope = RotaryTables(positions.repeat(frames, 1), self.head_dim, self.rope_base)

        kept: dict[int, Tensor] = {}
        last = max(keep_layers)
        for step in range(last + 1):
            tokens = self._run(self.frame_blocks[step], tokens.view(batch * frames, per_frame, dim), frame_rope)
            frame_out = tokens
            tokens = self._run(self.global_blocks[step], tokens.view(batch, frames * per_frame, dim), global_rope)
            if step in keep_layers:
                kept[step] = torch.cat(
                    [frame_out.view(batch, frames, per_frame, dim), tokens.view(batch, frames, per_frame, dim)],
                    dim=-1,
                )
        return kept
