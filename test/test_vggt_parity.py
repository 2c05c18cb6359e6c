"""Parity of our VGGT with the reference implementation on the shared tiny fixture (fp32, CPU):
the larger check where ../shared is present (518x518 case, intermediate tokens, configs). The
in-project fixture (test_vggt_parity_small.py) runs everywhere."""
from __future__ import annotations

import pytest
import torch

from conftest import shared_file
from moe3d_ros.model.geometry import depth_to_world_points
from moe3d_ros.model import VGGT, preset

TOL = dict(atol=1e-4, rtol=1e-4)
ALL_HEADS = ("camera", "depth", "point")


@pytest.fixture(scope="module")
def fixture():
    return torch.load(shared_file("fixtures/vggt_parity_tiny.pt"), weights_only=True)


@pytest.fixture(scope="module")
def model(fixture):
    net = VGGT(preset("tiny").with_heads(ALL_HEADS)).eval()
    net.load_state_dict(fixture["state_dict"], strict=True)
    return net


def test_tiny_preset_matches_fixture_config(fixture):
    ref = fixture["config"]
    cfg = preset("tiny")
    assert cfg.embed_dim == ref["vggt"]["embed_dim"] and cfg.patch_size == ref["vggt"]["patch_size"]
    assert cfg.aggregator.depth == ref["aggregator"]["depth"]
    assert cfg.aggregator.num_heads == ref["aggregator"]["num_heads"]
    assert cfg.aggregator.rope_base == ref["aggregator"]["rope_freq"]
    assert cfg.encoder.depth == ref["dino"]["depth"] and cfg.encoder.num_heads == ref["dino"]["num_heads"]
    assert cfg.camera_head.trunk_depth == ref["camera_head"]["trunk_depth"]
    assert cfg.camera_head.num_heads == ref["camera_head"]["num_heads"]
    assert cfg.camera_head.num_iterations == ref["camera_num_iterations"]
    assert cfg.dpt.features == ref["dpt_head"]["features"]
    assert list(cfg.dpt.out_channels) == ref["dpt_head"]["out_channels"]
    assert list(cfg.dpt.intermediate_layers) == ref["dpt_head"]["intermediate_layer_idx"]


def test_vggt_1b_preset_matches_reference_config(fixture):
    ref = fixture["config_1b_reference"]
    cfg = preset("vggt_1b")
    assert cfg.embed_dim == ref["vggt"]["embed_dim"]
    assert cfg.aggregator.depth == ref["aggregator"]["depth"] and cfg.aggregator.num_heads == ref["aggregator"]["num_heads"]
    assert cfg.camera_head.trunk_depth == ref["camera_head"]["trunk_depth"]
    assert list(cfg.dpt.out_channels) == ref["dpt_head"]["out_channels"]
    assert list(cfg.dpt.intermediate_layers) == ref["dpt_head"]["intermediate_layer_idx"]


CASES = ["s2_140x182", "s1_126x98", "s1_518x518"]


@pytest.fixture(scope="module")
def outputs(fixture, model):
    with torch.no_grad():
        return {name: model(fixture["cases"][name]["images"], heads=ALL_HEADS) for name in CASES}


@pytest.mark.parametrize("case", CASES)
def test_camera_outputs(fixture, outputs, case):
    ref, out = fixture["cases"][case], outputs[case]
    torch.testing.assert_close(out.pose_enc, ref["outputs"]["pose_enc"], **TOL)
    assert len(out.pose_enc_list) == 4
    for ours, theirs in zip(out.pose_enc_list, ref["outputs"]["pose_enc_list"]):
        torch.testing.assert_close(ours, theirs, **TOL)
    torch.testing.assert_close(out.extrinsics, ref["intermediates"]["extrinsic"], **TOL)
    torch.testing.assert_close(out.intrinsics, ref["intermediates"]["intrinsic"], **TOL)


@pytest.mark.parametrize("case", CASES)
def test_dense_outputs(fixture, outputs, case):
    ref, out = fixture["cases"][case], outputs[case]
    torch.testing.assert_close(out.depth, ref["outputs"]["depth"][..., 0], **TOL)
    torch.testing.assert_close(out.depth_conf, ref["outputs"]["depth_conf"], **TOL)
    torch.testing.assert_close(out.world_points, ref["outputs"]["world_points"], **TOL)
    torch.testing.assert_close(out.world_points_conf, ref["outputs"]["world_points_conf"], **TOL)


@pytest.mark.parametrize("case", CASES)
def test_points_unprojected_from_depth(fixture, outputs, case):
    ref, out = fixture["cases"][case], outputs[case]
    points = depth_to_world_points(out.depth, out.extrinsics, out.intrinsics)
    expected = ref["intermediates"]["world_points_from_depth"]  # the reference unprojects in float64 numpy
    torch.testing.assert_close(points, expected.float(), **TOL)


@pytest.mark.parametrize("case", CASES)
def test_intermediate_tokens(fixture, model, case):
    """The encoder's patch tokens and every aggregator step, to localise a regression."""
    ref = fixture["cases"][case]
    images = ref["images"][None]
    with torch.no_grad():
        mean = images.new_tensor([0.485, 0.456, 0.406]).view(1, 1, 3, 1, 1)
        std = images.new_tensor([0.229, 0.224, 0.225]).view(1, 1, 3, 1, 1)
        patches = model.aggregator.patch_embed(((images - mean) / std).flatten(0, 1))
        tokens = model.aggregator(images, keep_layers=(0, 1, 2, 3))
    torch.testing.assert_close(patches, ref["intermediates"]["dino_x_norm_patchtokens"], **TOL)
    assert model.aggregator.patch_start_idx == ref["intermediates"]["patch_start_idx"]
    for step, expected in ref["intermediates"]["aggregated_tokens"].items():
        torch.testing.assert_close(tokens[step], expected, **TOL)
