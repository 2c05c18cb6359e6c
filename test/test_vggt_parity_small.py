"""Parity of our VGGT with the reference implementation on the in-project fixture (fp32, CPU):
test/fixtures/vggt_parity_small.pt, written by scripts/make_parity_fixture.py from the reference
at upstream commit a288dd0f for the `tiny` preset with seeded weights. Runs for anyone who clones
the project; the shared fixture adds larger cases where it is present (test_vggt_parity.py)."""
from __future__ import annotations

import pytest
import torch

from moe3d_ros.model import VGGT, preset
from parity_fixture import load_small_fixture

TOL = dict(atol=1e-4, rtol=1e-4)
ALL_HEADS = ("camera", "depth", "point")
CASES = ["s2_140x182", "s1_126x98"]


@pytest.fixture(scope="module")
def fixture():
    return load_small_fixture()


@pytest.fixture(scope="module")
def model(fixture):
    net = VGGT(preset("tiny").with_heads(ALL_HEADS)).eval()
    net.load_state_dict(fixture["state_dict"], strict=True)
    return net


@pytest.fixture(scope="module")
def outputs(fixture, model):
    with torch.no_grad():
        return {name: model(fixture["cases"][name]["images"], heads=ALL_HEADS) for name in CASES}


@pytest.mark.parametrize("case", CASES)
def test_camera_outputs(fixture, outputs, case):
    ref, out = fixture["cases"][case]["outputs"], outputs[case]
    torch.testing.assert_close(out.pose_enc, ref["pose_enc"], **TOL)
    assert len(out.pose_enc_list) == len(ref["pose_enc_list"]) == 4
    for ours, theirs in zip(out.pose_enc_list, ref["pose_enc_list"]):
        torch.testing.assert_close(ours, theirs, **TOL)


@pytest.mark.parametrize("case", CASES)
def test_dense_outputs(fixture, outputs, case):
    ref, out = fixture["cases"][case]["outputs"], outputs[case]
    torch.testing.assert_close(out.depth, ref["depth"][..., 0], **TOL)
    torch.testing.assert_close(out.depth_conf, ref["depth_conf"], **TOL)
    torch.testing.assert_close(out.world_points, ref["world_points"], **TOL)
    torch.testing.assert_close(out.world_points_conf, ref["world_points_conf"], **TOL)


def test_the_fixture_is_small_and_its_outputs_vary():
    from parity_fixture import FIXTURE

    assert FIXTURE.stat().st_size < 4e6
    depth = load_small_fixture()["cases"]["s2_140x182"]["outputs"]["depth"]
    assert depth.std() > 0.01 * depth.abs().mean()  # every branch matters: not a constant map


def test_only_requested_heads_run(fixture, model):
    images = fixture["cases"]["s1_126x98"]["images"]
    with torch.no_grad():
        cam = model(images, heads=("camera",))
        depth = model(images, heads=("depth",))
    assert cam.pose_enc is not None and cam.depth is None and cam.world_points is None
    assert depth.depth is not None and depth.pose_enc is None and depth.extrinsics is None
    assert depth.depth.shape == (1, 1, 126, 98)


def test_batched_input_matches_single(fixture, model):
    images = fixture["cases"]["s2_140x182"]["images"]
    with torch.no_grad():
        single = model(images, heads=("camera", "depth"))
        batched = model(torch.stack([images, images.flip(0)]), heads=("camera", "depth"))
    torch.testing.assert_close(batched.depth[0], single.depth[0], **TOL)
    torch.testing.assert_close(batched.pose_enc[0], single.pose_enc[0], **TOL)


def test_frame_chunking_matches_one_chunk(fixture, model):
    """The DPT head processes frames in chunks; the chunk size must not change results."""
    images = fixture["cases"]["s2_140x182"]["images"]
    with torch.no_grad():
        whole = model(images, heads=("depth",)).depth
        model.depth_head.frames_chunk_size = 1
        try:
            chunked = model(images, heads=("depth",)).depth
        finally:
            model.depth_head.frames_chunk_size = 8
    torch.testing.assert_close(chunked, whole, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize(
    "images, heads, message",
    [
        (torch.rand(1, 3, 100, 98), ("depth",), "multiples of 14"),
        (torch.rand(1, 4, 98, 98), ("depth",), "[S, 3, H, W]"),
        ((torch.rand(1, 3, 98, 98) * 255).to(torch.uint8), ("depth",), "floating point"),
        (torch.rand(1, 3, 98, 98), ("track",), "requested"),
    ],
)
def test_bad_input_is_a_clear_error(model, images, heads, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        model(images, heads=heads)
