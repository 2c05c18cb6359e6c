"""Encoder tokens of recent frames, reused across windows. No ROS here.

In the node's sliding windows most frames are keyframes that earlier windows already encoded, and
the encoder (about a third of the forward's arithmetic) sees one frame at a time: a frame's tokens
depend only on its own pixels and preprocessing, so reusing them is exact. Entries are keyed by
the caller's frame key (camera and stamp) and the frame's preprocessing (the same image padded
differently in another window is another entry); the least recently used go first.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Hashable, Sequence

import torch
from torch import Tensor

from .preprocess import ImageTransform


class EncoderCache:
    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._tokens: OrderedDict[tuple[Hashable, ImageTransform], Tensor] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._tokens)

    def clear(self) -> None:
        self._tokens.clear()

    def patches(self, encode: Callable[[Tensor], Tensor], images: Tensor, keys: Sequence[Hashable],
                transforms: Sequence[ImageTransform]) -> Tensor:
        """Encoder tokens [S, N, C] of `images` [S, 3, H, W]: cached ones reused, the rest encoded
        in one batch by `encode` (the model's `aggregator.encode`, or a compiled one) and kept."""
        if not len(keys) == len(transforms) == images.shape[0]:
            raise ValueError(f"{images.shape[0]} images need as many keys and transforms, got {len(keys)} and {len(transforms)}")
        entries = list(zip(keys, transforms))
        missing = [i for i, entry in enumerate(entries) if entry not in self._tokens]
        if missing:
            fresh = encode(images[missing][None])
            for row, i in enumerate(missing):
                self._tokens[entries[i]] = fresh[row]
        for entry in entries:
            self._tokens.move_to_end(entry)
        out = torch.stack([self._tokens[entry] for entry in entries])
        while len(self._tokens) > self.capacity:
            self._tokens.popitem(last=False)
        self.hits += len(entries) - len(missing)
        self.misses += len(missing)
        return out
