"""DPT dense head (depth or world points) on four aggregator steps.

The head is split into stages so the MoE depth head can share the pyramid and give each expert
its own copy of the finest stages: `pyramid` (projection, resize, 3x3 to `features`),
`fuse_coarse` (refinenet4..2), then refinenet1 and `predict` (output convs).
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import VGGTConfig

UV_EMBED_SCALE = 0.1
UV_EMBED_OMEGA0 = 100.0
IMAGE_KEY = "image"  # entry of the head's input dict that carries the frames [N, 3, H, W] in [0, 1], when a head reads them


class ResidualUnit(nn.Module):
    """relu -> conv3x3 -> relu -> conv3x3, plus a skip that adds relu(x).

    The reference applies its first ReLU in place, so the skip sees the rectified input.
    """

    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        x = torch.relu(x)
        return self.conv2(torch.relu(self.conv1(x))) + x


class FusionBlock(nn.Module):
    def __init__(self, features: int, has_residual: bool = True) -> None:
        super().__init__()
        self.out_conv = nn.Conv2d(features, features, 1)
        self.resConfUnit1 = ResidualUnit(features) if has_residual else None
        self.resConfUnit2 = ResidualUnit(features)

    def forward(self, x: Tensor, skip: Tensor | None = None, size: tuple[int, int] | None = None) -> Tensor:
        if skip is not None and self.resConfUnit1 is not None:
            x = x + self.resConfUnit1(skip)
        x = self.resConfUnit2(x)
        # A 1x1 conv commutes with bilinear resizing (weights sum to 1), so run it at the lower
        # resolution: same result as resize-then-conv, a quarter of the work when upsampling x2.
        x = self.out_conv(x)
        if size is None:
            return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        return F.interpolate(x, size=size, mode="bilinear", align_corners=True)


class Scratch(nn.Module):
    def __init__(self, out_channels: tuple[int, ...], features: int, hidden: int, output_dim: int) -> None:
        super().__init__()
        self.layer1_rn = nn.Conv2d(out_channels[0], features, 3, padding=1, bias=False)
        self.layer2_rn = nn.Conv2d(out_channels[1], features, 3, padding=1, bias=False)
        self.layer3_rn = nn.Conv2d(out_channels[2], features, 3, padding=1, bias=False)
        self.layer4_rn = nn.Conv2d(out_channels[3], features, 3, padding=1, bias=False)
        self.refinenet1 = FusionBlock(features)
        self.refinenet2 = FusionBlock(features)
        self.refinenet3 = FusionBlock(features)
        self.refinenet4 = FusionBlock(features, has_residual=False)
        self.output_conv1, self.output_conv2 = output_convs(features, hidden, output_dim)


def conv_block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    """3x3 conv (with `stride`), ReLU, 3x3 conv, ReLU."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.ReLU(),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.ReLU())


class ImagePath(nn.Module):
    """A small conv encoder of the image (full, 1/2 and 1/4 resolution) whose features refine the
    head's full-resolution output stage: the tokens say which depth, the pixels say where it steps.
    Without it every depth the head gives comes from the patch grid upsampled, which blends the two
    sides of an edge inside a patch. Residual: x + refine(x, image features)."""

    def __init__(self, channels: int, features: int) -> None:
        super().__init__()
        c = channels
        self.level0, self.level1, self.level2 = conv_block(3, c), conv_block(c, 2 * c, 2), conv_block(2 * c, 4 * c, 2)
        self.project1, self.project2 = nn.Conv2d(2 * c, c, 1), nn.Conv2d(4 * c, c, 1)
        self.refine = nn.Sequential(nn.Conv2d(features + 3 * c, features, 3, padding=1), nn.ReLU(),
                                    nn.Conv2d(features, features, 3, padding=1))

    def forward(self, x: Tensor, images: Tensor) -> Tensor:
        """x [N, features, H, W] at the image's resolution, images [N, 3, H, W] in [0, 1]."""
        e0 = self.level0(images.to(x.dtype) - 0.5)
        e1 = self.level1(e0)
        e2 = self.level2(e1)
        size = x.shape[-2:]
        up1 = F.interpolate(self.project1(e1), size=size, mode="bilinear", align_corners=False)
        up2 = F.interpolate(self.project2(e2), size=size, mode="bilinear", align_corners=False)
        return x + self.refine(torch.cat([x, e0, up1, up2], dim=1))


def output_convs(features: int, hidden: int, output_dim: int) -> tuple[nn.Conv2d, nn.Sequential]:
    """The head's last convolutions: 3x3 halving `features`, then (3x3 to hidden, ReLU, 1x1)."""
    conv1 = nn.Conv2d(features, features // 2, 3, padding=1)
    conv2 = nn.Sequential(
        nn.Conv2d(features // 2, hidden, 3, padding=1), nn.ReLU(), nn.Conv2d(hidden, output_dim, 1)
    )
    return conv1, conv2


def sincos_embedding(coords: Tensor, dim: int) -> Tensor:
    """[N] coordinates -> [N, dim]: sin then cos at frequencies omega0^(-j/(dim/2))."""
    omega = torch.arange(dim // 2, dtype=torch.float64, device=coords.device) / (dim / 2.0)
    angles = coords.double()[:, None] / (UV_EMBED_OMEGA0**omega)[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=1).float()


def add_uv_embedding(x: Tensor, image_hw: tuple[int, int], inplace: bool = False) -> Tensor:
    """Add 0.1 x the sinusoidal embedding of a UV grid spanning the image's aspect ratio.

    The embedding is separable: the first half of the channels depends on the column only,
    the second half on the row only, so it is added from two 1-D tables, never materialised at
    full resolution. `inplace` adds into `x` (a temporary, e.g. a fresh upsampling): at the
    output stage that saves one full-resolution map per frame of peak memory.
    """
    channels, height, width = x.shape[-3:]
    aspect = image_hw[1] / image_hw[0]
    diag = math.sqrt(aspect**2 + 1.0)
    span_x, span_y = aspect / diag, 1.0 / diag
    xs = torch.linspace(-span_x * (width - 1) / width, span_x * (width - 1) / width, width, device=x.device)
    ys = torch.linspace(-span_y * (height - 1) / height, span_y * (height - 1) / height, height, device=x.device)
    half = channels // 2
    emb_x = sincos_embedding(xs, half).T.to(x.dtype)[:, None, :]  # [half, 1, W]
    emb_y = sincos_embedding(ys, half).T.to(x.dtype)[:, :, None]  # [half, H, 1]
    out = x if inplace else x.clone()
    out[..., :half, :, :] += UV_EMBED_SCALE * emb_x
    out[..., half : 2 * half, :, :] += UV_EMBED_SCALE * emb_y
    return out


def activate_depth(raw: Tensor) -> tuple[Tensor, Tensor]:
    """[N, 2, H, W] -> depth exp(c0) [N, H, W], confidence 1 + exp(c1) [N, H, W], in fp32 whatever
    the head's precision (exp overflows fp16 above 11)."""
    raw = raw.float()
    return torch.exp(raw[:, 0]), 1.0 + torch.exp(raw[:, 1])


def activate_points(raw: Tensor) -> tuple[Tensor, Tensor]:
    """[N, 4, H, W] -> points sign(y)*(exp|y|-1) [N, H, W, 3], confidence 1 + exp(c) [N, H, W]."""
    raw = raw.float()
    xyz = raw[:, :3].permute(0, 2, 3, 1)
    return torch.sign(xyz) * torch.expm1(xyz.abs()), 1.0 + torch.exp(raw[:, 3])


class DPTHead(nn.Module):
    def __init__(self, cfg: VGGTConfig, output_dim: int) -> None:
        super().__init__()
        dpt, dim_in = cfg.dpt, cfg.head_dim_in
        oc = dpt.out_channels
        self.patch_size = cfg.patch_size
        self.layers = dpt.intermediate_layers
        self.frames_chunk_size = dpt.frames_chunk_size
        self.norm = nn.LayerNorm(dim_in)
        self.projects = nn.ModuleList(nn.Conv2d(dim_in, c, 1) for c in oc)
        self.resize_layers = nn.ModuleList(
            [
                nn.ConvTranspose2d(oc[0], oc[0], kernel_size=4, stride=4),
                nn.ConvTranspose2d(oc[1], oc[1], kernel_size=2, stride=2),
                nn.Identity(),
                nn.Conv2d(oc[3], oc[3], kernel_size=3, stride=2, padding=1),
            ]
        )
        self.scratch = Scratch(oc, dpt.features, dpt.hidden_channels, output_dim)
        self.image_path = ImagePath(dpt.image_skip, dpt.features // 2) if dpt.image_skip else None

    def pyramid(self, tokens: dict[int, Tensor], patch_start: int, image_hw: tuple[int, int]) -> list[Tensor]:
        """Patch tokens of the four steps ([N, P, 2C] each) -> four maps of `features` channels, fine to coarse."""
        grid_h, grid_w = image_hw[0] // self.patch_size, image_hw[1] // self.patch_size
        scratch = self.scratch
        reducers = (scratch.layer1_rn, scratch.layer2_rn, scratch.layer3_rn, scratch.layer4_rn)
        maps = []
        for level, layer in enumerate(self.layers):
            x = self.norm(tokens[layer][:, patch_start:])
            x = x.transpose(1, 2).reshape(x.shape[0], x.shape[-1], grid_h, grid_w)
            x = add_uv_embedding(self.projects[level](x), image_hw)
            maps.append(reducers[level](self.resize_layers[level](x)))
        return maps

    def fuse_coarse(self, maps: list[Tensor]) -> Tensor:
        """refinenet4..2: the coarse part of the fusion, at layer1's resolution."""
        s = self.scratch
        x = s.refinenet4(maps[3], size=maps[2].shape[-2:])
        x = s.refinenet3(x, maps[2], size=maps[1].shape[-2:])
        return s.refinenet2(x, maps[1], size=maps[0].shape[-2:])

    def forward_chunk(self, tokens: dict, patch_start: int, image_hw: tuple[int, int]) -> Tensor:
        """Raw head output [N, output_dim, H, W] for N frames."""
        maps = self.pyramid(tokens, patch_start, image_hw)
        x = self.scratch.refinenet1(self.fuse_coarse(maps), maps[0])
        return predict(self.scratch.output_conv1, self.scratch.output_conv2, x, image_hw, self.output_stage(tokens))

    def output_stage(self, tokens: dict) -> Callable[[Tensor], Tensor] | None:
        """The image path's refinement of the full-resolution features of these frames (None without one)."""
        if self.image_path is None:
            return None
        images = tokens[IMAGE_KEY]
        return lambda x: self.image_path(x, images)

    def with_images(self, tokens: dict[int, Tensor], images: Tensor | None) -> dict:
        """`tokens` plus the frames [B, S, 3, H, W], when a part of this head reads them."""
        if self.image_path is None:
            return tokens
        if images is None:
            raise ValueError("this depth head reads the input image (dpt.image_skip): pass images")
        return {**tokens, IMAGE_KEY: images}

    def forward(self, tokens: dict[int, Tensor], patch_start: int, image_hw: tuple[int, int], images: Tensor | None = None) -> Tensor:
        """tokens: {step: [B, S, P, 2C]} -> raw output [B, S, output_dim, H, W], frames in chunks;
        `images` [B, S, 3, H, W] in [0, 1] when the head has an image path."""
        return run_in_frame_chunks(self.forward_chunk, self.with_images(tokens, images), patch_start, image_hw,
                                   self.frames_chunk_size)


def run_in_frame_chunks(chunk_fn, tokens: dict, patch_start: int, image_hw: tuple[int, int], chunk: int):
    """Call chunk_fn on at most `chunk` frames at a time (bounding activation memory) and
    reassemble its Tensor, or tuple of Tensors, as [B, S, ...]. Every value of `tokens` is a
    [B, S, ...] tensor and is cut along S."""
    batch, frames = next(iter(tokens.values())).shape[:2]
    if frames <= chunk:  # one call, no Python loop over the frame count (a dynamic axis stays dynamic in export)
        out = chunk_fn({k: v.flatten(0, 1) for k, v in tokens.items()}, patch_start, image_hw)
        return tuple(t.unflatten(0, (batch, -1)) for t in out) if isinstance(out, tuple) else out.unflatten(0, (batch, -1))
    parts = []
    for start in range(0, frames, chunk):
        flat = {k: v[:, start : start + chunk].flatten(0, 1) for k, v in tokens.items()}
        out = chunk_fn(flat, patch_start, image_hw)
        parts.append(tuple(t.unflatten(0, (batch, -1)) for t in out) if isinstance(out, tuple) else out.unflatten(0, (batch, -1)))
    if len(parts) == 1:
        return parts[0]
    if isinstance(parts[0], tuple):
        return tuple(torch.cat(items, dim=1) for items in zip(*parts))
    return torch.cat(parts, dim=1)


def predict(conv1: nn.Conv2d, conv2: nn.Sequential, x: Tensor, image_hw: tuple[int, int],
            refine: Callable[[Tensor], Tensor] | None = None) -> Tensor:
    """Output stage: 3x3 conv, bilinear resize to the image, UV embedding, [`refine`,] final convs."""
    x = add_uv_embedding(F.interpolate(conv1(x), size=image_hw, mode="bilinear", align_corners=True), image_hw, inplace=True)
    return conv2(x if refine is None else refine(x))
