"""A forward captured in a CUDA graph per input shape, and replayed. No ROS here.

A window of a given shape launches the same few thousand kernels every time; replaying them as
one graph removes the per-kernel launch cost on the host. Each shape (frames, image size,
encoder tokens given or not) is captured once, on first use or at warm-up, into one shared
memory pool. Outputs live in the graph's static buffers: they are valid until the next call,
so callers copy what they keep before running the next window (the engine does).
"""
from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Generic, Hashable, TypeVar

import torch
from torch import Tensor

LOG = logging.getLogger(__name__)
Output = TypeVar("Output")
WARM_UP_RUNS = 2  # eager runs on a side stream before capture (kernel selection, lazy init)


@dataclass
class _Captured(Generic[Output]):
    graph: torch.cuda.CUDAGraph
    images: Tensor
    patches: Tensor | None
    output: Output


class GraphedForward(Generic[Output]):
    """Calls `forward(images, patches)` through a CUDA graph captured for each input shape.

    `forward` must not synchronise with the host (no .item(), no timers that synchronise, no
    tensors built from Python values on the device); the least recently used graph is
    dropped beyond `max_graphs` shapes. A shape whose capture fails (other than for lack of
    memory) runs without a graph from then on, reported once through `note`.
    """

    def __init__(self, forward: Callable[[Tensor, Tensor | None], Output], note: Callable[[str], None] = LOG.warning,
                 max_graphs: int = 8) -> None:
        if not torch.cuda.is_available():
            raise RuntimeError("CUDA graphs need a CUDA device")
        self.forward = forward
        self.note = note
        self.max_graphs = max_graphs
        self._uncapturable: set[Hashable] = set()
        self._pool = torch.cuda.graph_pool_handle()
        self._graphs: OrderedDict[Hashable, _Captured[Output]] = OrderedDict()
        self.captures = 0
        self.replays = 0

    def __len__(self) -> int:
        return len(self._graphs)

    @staticmethod
    def _key(images: Tensor, patches: Tensor | None) -> Hashable:
        patch_key = None if patches is None else (tuple(patches.shape), patches.dtype)
        return tuple(images.shape), images.dtype, images.device, patch_key

    def __call__(self, images: Tensor, patches: Tensor | None = None) -> Output:
        key = self._key(images, patches)
        if key in self._uncapturable:
            return self.forward(images, patches)
        captured = self._graphs.get(key)
        if captured is None:
            try:
                captured = self._capture(images, patches)
            except torch.OutOfMemoryError:
                raise
            except Exception as exc:
                self._uncapturable.add(key)
                self.note(f"CUDA graph capture failed for images {tuple(images.shape)} ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0][:160]}); this window size runs without a CUDA graph")
                return self.forward(images, patches)
            self._graphs[key] = captured
            while len(self._graphs) > self.max_graphs:
                self._graphs.popitem(last=False)
        self._graphs.move_to_end(key)
        captured.images.copy_(images)
        if patches is not None:
            captured.patches.copy_(patches)
        captured.graph.replay()
        self.replays += 1
        return captured.output

    def _capture(self, images: Tensor, patches: Tensor | None) -> _Captured[Output]:
        static_images = images.clone()
        static_patches = None if patches is None else patches.clone()
        side = torch.cuda.Stream(device=images.device)
        side.wait_stream(torch.cuda.current_stream(images.device))
        with torch.cuda.stream(side):
            for _ in range(WARM_UP_RUNS):
                self.forward(static_images, static_patches)
        torch.cuda.current_stream(images.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self._pool):
            output = self.forward(static_images, static_patches)
        self.captures += 1
        LOG.info("captured a CUDA graph for images %s%s", tuple(images.shape),
                 "" if patches is None else f" with encoder tokens {tuple(patches.shape)}")
        return _Captured(graph, static_images, static_patches, output)

    def clear(self) -> None:
        """Drop every graph (their memory returns to the pool), e.g. after an out-of-memory error;
        shapes whose capture failed are tried again."""
        self._graphs.clear()
        self._uncapturable.clear()
