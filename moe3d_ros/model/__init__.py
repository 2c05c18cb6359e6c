"""Torch modules of VGGT (and, on top, the MoE depth head). Imports torch only."""
from .config import (
    PRESETS,
    AggregatorConfig,
    CameraHeadConfig,
    DPTConfig,
    EncoderConfig,
    MoEConfig,
    VGGTConfig,
    preset,
)
from .vggt import VGGT, VGGTOutput

__all__ = [
    "AggregatorConfig",
    "CameraHeadConfig",
    "DPTConfig",
    "EncoderConfig",
    "MoEConfig",
    "PRESETS",
    "VGGT",
    "VGGTConfig",
    "VGGTOutput",
    "preset",
]
