"""Every speed option gives the plain path's outputs (fp32, CPU): preprocessing on the CPU or the
device, post-processing on the device, the compiled forward (with the encoder cache), CUDA graphs
(their CPU fall-back here; replay against the plain forward where CUDA exists)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from moe3d_ros.inference.cuda_graph import GraphedForward
from moe3d_ros.outputs.device_postprocess import COUNT_NAMES, device_outputs
from moe3d_ros.inference.engine import DeviceWindow, EngineConfig, InferenceEngine, Predictions
from moe3d_ros.outputs.filtering import FilterConfig
from moe3d_ros.model import VGGT, MoEConfig, preset
from moe3d_ros.outputs.postprocess import camera_product, fused_cloud
from moe3d_ros.inference.preprocess import plan_transform

TOL = dict(rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def model():
    """VGGT's architecture at its smallest: one block of each kind (inductor compiles every op of
    the forward on the CPU in the compiled test, so its cost grows with the depth)."""
    torch.manual_seed(0)
    tiny = preset("tiny")
    config = dataclasses.replace(
        tiny, img_size=112, encoder=dataclasses.replace(tiny.encoder, depth=1),
        aggregator=dataclasses.replace(tiny.aggregator, depth=1),
        dpt=dataclasses.replace(tiny.dpt, intermediate_layers=(0, 0, 0, 0)),
    ).with_moe(MoEConfig(num_experts=3))
    return VGGT(config).eval()


def _frames(count: int, hw=(90, 120)) -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    return [rng.integers(0, 256, (*hw, 3), dtype=np.uint8) for _ in range(count)]


def _assert_same(a: Predictions, b: Predictions) -> None:
    for name in ("depth", "depth_conf", "extrinsics", "gate_entropy", "expert_spread"):
        np.testing.assert_allclose(getattr(b, name), getattr(a, name), **TOL, err_msg=name)
    # A random model's field of view can be tiny: compare 1 / focal (well conditioned) and the principal point.
    np.testing.assert_allclose(1 / b.intrinsics[:, [0, 1], [0, 1]], 1 / a.intrinsics[:, [0, 1], [0, 1]], **TOL)
    np.testing.assert_allclose(b.intrinsics[:, :2, 2], a.intrinsics[:, :2, 2], **TOL)
    assert np.mean(a.winner != b.winner) < 1e-3  # ties between experts may break either way
    np.testing.assert_array_equal(b.images, a.images)


@pytest.mark.parametrize("options", [dict(device_preprocess=False), dict(keep_on_device=True), dict(cuda_graph=True)],
                         ids=["preprocess-on-cpu", "keep-on-device", "cuda-graph"])
def test_each_option_gives_the_plain_outputs(model, options):
    plain = InferenceEngine(model, EngineConfig(device="cpu"))
    fast = InferenceEngine(model, EngineConfig(device="cpu", **options))
    frames = _frames(3)
    _assert_same(plain.run(frames), fast.run(frames))


def test_cuda_graphs_fall_back_on_the_cpu_with_a_note(model):
    engine = InferenceEngine(model, EngineConfig(device="cpu", cuda_graph=True))
    assert engine.notes == ["cuda_graph needs a CUDA device; running on cpu without CUDA graphs"]
    assert "CUDA graphs" not in engine.description


@pytest.mark.slow  # torch.compile: about 70 s on a machine whose inductor cache is empty
def test_the_compiled_forward_with_the_encoder_cache_gives_the_plain_outputs(model):
    plain = InferenceEngine(model, EngineConfig(device="cpu"))
    fast = InferenceEngine(model, EngineConfig(device="cpu", compile=True, encoder_cache=8, keep_on_device=True))
    assert "compiled" in fast.description
    frames = _frames(5)
    assert fast.warm_up([3], (90, 120)) > 0 and len(fast.cache) == 0  # warm-up leaves no tokens behind
    for newest in (2, 3, 4):  # sliding windows: two of three frames seen before
        window = [newest, newest - 1, newest - 2]
        a = plain.run([frames[i] for i in window])
        b = fast.run([frames[i] for i in window], keys=window)
        _assert_same(a, b)
        assert set(b.timings) == {"preprocess", "encoder", "forward", "to_host"}
    assert fast.cache.hits == 4 and fast.cache.misses == 3 + 5  # the warm-up window, then each frame once
    fast.release()
    assert len(fast.cache) == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")
def test_cuda_graph_replays_match_the_plain_forward_on_cuda(model, monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)  # fp32 convolutions: comparable to 1e-4
    plain = InferenceEngine(model, EngineConfig(device="cuda", precision="fp32"))
    graphed = InferenceEngine(model, EngineConfig(device="cuda", precision="fp32", cuda_graph=True, encoder_cache=8))
    assert isinstance(graphed._fast, GraphedForward)
    frames = _frames(5)
    for newest in (2, 3, 4, 2):
        window = [newest, newest - 1, newest - 2]
        _assert_same(plain.run([frames[i] for i in window]), graphed.run([frames[i] for i in window], keys=window))
    assert graphed._fast.captures == 1 and graphed._fast.replays == 4 and not graphed.notes


def _predictions(rng: np.random.Generator, mode: str) -> Predictions:
    """Three frames with steps, NaN, inf and negative depth, an MoE gate, poses and intrinsics."""
    transforms = [plan_transform((60, 100), mode, 112)] * 3
    height, width = transforms[0].model_hw
    depth = rng.uniform(1.0, 1.2, (3, height, width)).astype(np.float32)
    depth[:, :, width // 2 :] *= 3  # a step: edge pixels filtered
    depth[0, 5, 5], depth[1, 7, 9], depth[2, 9, 11] = np.nan, np.inf, -1.0
    depth[:, height // 2 - 4 : height // 2 + 4, width // 4 - 4 : width // 4 + 4] = 0.3  # a near patch: its inside is below min_depth (REP-117: -Inf)
    extrinsics = np.concatenate([np.eye(3)[None].repeat(3, 0), rng.normal(0, 0.3, (3, 3, 1))], axis=2).astype(np.float32)
    intrinsics = np.array([[100.0, 0, width / 2], [0, 100.0, height / 2], [0, 0, 1]], np.float32)[None].repeat(3, 0)
    images = rng.integers(0, 256, (3, height, width, 3), dtype=np.uint8)
    pred = Predictions(images=images, depth=depth, depth_conf=rng.uniform(1.0, 3.0, depth.shape).astype(np.float32),
                       extrinsics=extrinsics, intrinsics=intrinsics, transforms=transforms,
                       winner=rng.integers(0, 3, depth.shape, dtype=np.uint8),
                       gate_entropy=rng.uniform(0, 1.1, depth.shape).astype(np.float32),
                       expert_spread=rng.uniform(0, 0.1, depth.shape).astype(np.float32), num_experts=3)
    pred.on_device = DeviceWindow(*(torch.from_numpy(a) for a in (images, depth, pred.depth_conf, pred.winner,
                                                                  pred.gate_entropy, pred.expert_spread)))
    return pred


@pytest.mark.parametrize("mode,organized,decimation,edge_test", [("crop", True, 1, "jump"), ("pad", True, 3, "between"),
                                                                   ("pad", False, 2, "jump"), ("crop", False, 1, "between")])
def test_device_postprocessing_matches_the_host_path(mode, organized, decimation, edge_test):
    rng = np.random.default_rng(7)
    pred = _predictions(rng, mode)
    cfg = FilterConfig(min_confidence=1.5, max_gate_entropy=0.8, max_edge_jump=0.05, min_depth=0.5, max_depth=3.3,
                       edge_test=edge_test)
    source_k = [np.array([[80.0, 0, 50], [0, 80.0, 30], [0, 0, 1]]), None, None]
    products, cloud = device_outputs(pred, [0, 1, 2], cfg, 1.1, source_k, cloud=True,
                                     organized=organized, decimation=decimation)
    expected = [camera_product(pred, i, cfg, 1.1, k) for i, k in enumerate(source_k)]
    expected_cloud = fused_cloud(pred, expected, organized, decimation, 1.1)
    assert any(np.isposinf(p.depth).any() for p in expected) and any(np.isneginf(p.depth).any() for p in expected)
    for got, want in zip(products, expected):
        np.testing.assert_array_equal(got.mask, want.mask)
        np.testing.assert_array_equal(got.depth, want.depth)
        np.testing.assert_array_equal(got.confidence, want.confidence)
        np.testing.assert_array_equal(got.colors, want.colors)
        np.testing.assert_array_equal(got.winner, want.winner)
        np.testing.assert_array_equal(got.intrinsics, want.intrinsics)
        assert got.filter_counts == want.filter_counts and set(got.filter_counts) == set(COUNT_NAMES)
        assert 0 < got.mask.sum() < got.mask.size
    assert cloud.dtype == expected_cloud.dtype and cloud.shape == expected_cloud.shape
    for name in ("x", "y", "z", "confidence"):
        np.testing.assert_allclose(cloud[name], expected_cloud[name], rtol=1e-6, atol=1e-6, err_msg=name)
    np.testing.assert_array_equal(cloud["rgb"], expected_cloud["rgb"])
    np.testing.assert_array_equal(cloud["expert"], expected_cloud["expert"])


def test_device_postprocessing_without_cloud_or_gate():
    pred = _predictions(np.random.default_rng(1), "crop")
    pred.on_device.winner = pred.on_device.gate_entropy = pred.on_device.expert_spread = None
    pred.winner = pred.gate_entropy = pred.expert_spread = None
    products, cloud = device_outputs(pred, [2], FilterConfig(), 1.0, [None], cloud=False)
    assert cloud is None and products[0].winner is None and products[0].frame == 2
    np.testing.assert_array_equal(products[0].depth, camera_product(pred, 2, FilterConfig(), 1.0).depth)
