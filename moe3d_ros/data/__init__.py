"""Multi-view RGB-D data: the common sequence type, the synthetic generator, dataset readers."""
from .sequence import RGBDSequence

__all__ = ["RGBDSequence"]
