"""Building blocks shared by the encoder, the aggregator and the heads."""
from .attention import Attention
from .block import Block, BlockSpec, LayerScale, Mlp
from .rope import RotaryTables, patch_positions

__all__ = ["Attention", "Block", "BlockSpec", "LayerScale", "Mlp", "RotaryTables", "patch_positions"]
