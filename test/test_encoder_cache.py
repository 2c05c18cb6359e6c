"""The encoder cache is exact: sliding windows with reused keyframe tokens give the outputs of
encoding every frame (fp32, CPU, the in-project parity model)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from moe3d_ros.inference.encoder_cache import EncoderCache
from moe3d_ros.inference.engine import EngineConfig, InferenceEngine
from moe3d_ros.model import VGGT, preset
from parity_fixture import load_small_fixture

TOL = dict(atol=1e-5, rtol=1e-5)


@pytest.fixture(scope="module")
def model():
    net = VGGT(preset("tiny").with_heads(("camera", "depth", "point"))).eval()
    net.load_state_dict(load_small_fixture()["state_dict"], strict=True)
    return net


def _frames(count: int, hw=(120, 160)) -> list[np.ndarray]:
    rng = np.random.default_rng(4)
    return [rng.integers(0, 256, (*hw, 3), dtype=np.uint8) for _ in range(count)]


def test_sliding_windows_with_cached_keyframes_match_encoding_everything(model):
    plain = InferenceEngine(model, EngineConfig(device="cpu"))
    cached = InferenceEngine(model, EngineConfig(device="cpu", encoder_cache=8))
    frames = _frames(7)
    for newest in range(2, 7):
        window = [newest, newest - 1, newest - 2]  # the newest frame and two earlier ones
        images = [frames[i] for i in window]
        a = plain.run(images)
        b = cached.run(images, keys=[("cam", i) for i in window])
        np.testing.assert_allclose(b.depth, a.depth, **TOL)
        np.testing.assert_allclose(b.depth_conf, a.depth_conf, **TOL)
        np.testing.assert_allclose(b.extrinsics, a.extrinsics, **TOL)
        np.testing.assert_allclose(b.intrinsics, a.intrinsics, **TOL)
    assert cached.cache.misses == 7 and cached.cache.hits == 3 * 5 - 7  # each frame encoded once
    assert "encoder" in b.timings


def test_a_frame_preprocessed_differently_is_encoded_again(model):
    cache = EncoderCache(capacity=4)
    plain = InferenceEngine(model, EngineConfig(device="cpu"))
    engine = InferenceEngine(model, EngineConfig(device="cpu", encoder_cache=4))
    small, tall = _frames(1)[0], _frames(1, hw=(200, 160))[0]
    engine.run([small], keys=["a"])
    out = engine.run([tall, small], keys=["b", "a"])  # a is padded to the taller camera's size here: new tokens
    assert engine.cache.misses == 3
    np.testing.assert_allclose(out.depth, plain.run([tall, small]).depth, **TOL)
    with pytest.raises(ValueError, match="as many keys"):
        cache.patches(model.aggregator.encode, torch.zeros(2, 3, 28, 28), ["x"], [])


def test_the_cache_is_bounded(model):
    engine = InferenceEngine(model, EngineConfig(device="cpu", encoder_cache=3))
    frames = _frames(6)
    for i in range(6):
        engine.run([frames[i]], keys=[i])
    assert len(engine.cache) == 3
