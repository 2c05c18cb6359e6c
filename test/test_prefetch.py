"""Batches made ahead by worker processes are exactly the batches the training loop would make."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from moe3d_ros.cli.train import build_sampler
from moe3d_ros.data.prefetch import PrefetchingSampler
from moe3d_ros.data.synthetic import SyntheticConfig
from moe3d_ros.data.windows import Augmentation, SyntheticWindows, TrainingWindow, WindowSampler
from moe3d_ros.train.config import config_from_dict


def _sampler() -> WindowSampler:
    synthetic = SyntheticWindows(SyntheticConfig(height=42, width=56), range(100, 120))
    return WindowSampler(synthetic=synthetic, window_size=2, target_width=56, augment=Augmentation(), seed=5)


def _same(a: TrainingWindow, b: TrainingWindow) -> bool:
    return all(torch.equal(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a)
               if isinstance(getattr(a, f.name), torch.Tensor))


def test_prefetched_batches_equal_the_loops_in_step_order_and_after_a_jump():
    plain = _sampler()
    with PrefetchingSampler(_sampler(), workers=2, prefetch=3) as prefetching:
        for step in (0, 1, 2, 3, 9, 10):  # 9: a resumed run jumps ahead; what was made for 4..6 is dropped
            assert _same(prefetching.batch(step, rank=1, batch_size=2), plain.batch(step, rank=1, batch_size=2)), step
        assert all(key[0] > 10 for key in prefetching._pending)


def test_prefetching_is_configured_by_data_workers():
    cfg = config_from_dict({"data": {"kind": "synthetic", "frames": 2, "target_width": 56, "synthetic_hw": [42, 56], "workers": 1}})
    sampler = build_sampler(cfg.data, 0)
    try:
        assert isinstance(sampler, PrefetchingSampler) and sampler.workers == 1
        assert sampler.batch(0).images.shape == (1, 2, 3, 42, 56)
    finally:
        sampler.close()
    with pytest.raises(ValueError, match="data.workers must be >= 0"):
        config_from_dict({"data": {"workers": -1}})
    with pytest.raises(ValueError, match="workers must be >= 1"):
        PrefetchingSampler(_sampler(), workers=0)
