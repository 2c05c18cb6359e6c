"""Camera head: refines a 9-value pose encoding per frame over a few iterations.

Pose encoding: translation (3), quaternion x,y,z,w (scalar last), fov_h, fov_w.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..config import VGGTConfig
from ..layers import Block, BlockSpec, Mlp

POSE_DIM = 9


class CameraHead(nn.Module):
    def __init__(self, cfg: VGGTConfig) -> None:
        super().__init__()
        cam, dim = cfg.camera_head, cfg.head_dim_in
        self.num_iterations = cam.num_iterations
        spec = BlockSpec(dim, cam.num_heads, cam.mlp_ratio, cam.layerscale_init)
        self.trunk = nn.Sequential(*(Block(spec) for _ in range(cam.trunk_depth)))
        self.token_norm = nn.LayerNorm(dim)
        self.trunk_norm = nn.LayerNorm(dim)
        self.empty_pose_tokens = nn.Parameter(torch.zeros(1, 1, POSE_DIM))
        self.embed_pose = nn.Linear(POSE_DIM, dim)
        self.poseLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 3 * dim))
        self.adaln_norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.pose_branch = Mlp(dim, dim // 2, POSE_DIM)

    def forward(self, camera_tokens: Tensor) -> list[Tensor]:
        """camera_tokens: [B, S, 2C] from the last aggregator step -> one [B, S, 9] per iteration."""
        tokens = self.token_norm(camera_tokens)
        normalised = self.adaln_norm(tokens)
        pose: Tensor | None = None
        outputs = []
        for _ in range(self.num_iterations):
            previous = self.empty_pose_tokens.expand_as(tokens[..., :POSE_DIM]) if pose is None else pose.detach()
            shift, scale, gate = self.poseLN_modulation(self.embed_pose(previous)).chunk(3, dim=-1)
            x = gate * (normalised * (1 + scale) + shift) + tokens
            delta = self.pose_branch(self.trunk_norm(self.trunk(x)))
            pose = delta if pose is None else pose + delta
            outputs.append(_activate(pose))
        return outputs


def _activate(pose: Tensor) -> Tensor:
    """Translation and quaternion stay linear; the two field-of-view values go through ReLU."""
    return torch.cat([pose[..., :7], torch.relu(pose[..., 7:])], dim=-1)
