"""The MoE depth head: initialisation from a DPT head, fusion, outputs, checkpoints, cost."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from parity_fixture import load_small_fixture
from moe3d_ros.io.checkpoint import CheckpointError, load_any, load_head_weights, load_vggt_weights, save_model
from moe3d_ros.model import VGGT, MoEConfig, preset
from moe3d_ros.model.cost import count_params_and_flops
from moe3d_ros.model.heads.moe_head import fuse

IMAGES_CASE = "s2_140x182"


@pytest.fixture(scope="module")
def fixture():
    return load_small_fixture()


@pytest.fixture(scope="module")
def published_file(fixture, tmp_path_factory):
    """The fixture's weights as a published-format checkpoint (DPT depth head, point head)."""
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    torch.save(fixture["state_dict"], path)
    return path


def _dpt_depth(published_file, images):
    model = VGGT(preset("tiny"))
    load_vggt_weights(model, published_file)
    with torch.no_grad():
        return model.eval()(images, heads=("depth",))


@pytest.mark.parametrize("scope", ["output", "fusion", "density"])
@pytest.mark.parametrize("fusion", ["winner", "surface", "mean"])
@pytest.mark.parametrize("on_meta", [False, True])
def test_fresh_moe_head_reproduces_the_dpt_head(fixture, published_file, scope, fusion, on_meta):
    images = fixture["cases"][IMAGES_CASE]["images"]
    reference = _dpt_depth(published_file, images)
    config = preset("tiny").with_moe(MoEConfig(num_experts=4, scope=scope, fusion=fusion))
    if on_meta:
        with torch.device("meta"):
            model = VGGT(config)
    else:
        model = VGGT(config)
    report = load_vggt_weights(model, published_file)
    assert any("initialised from the file's DPT depth head" in note for note in report.notes)
    with torch.no_grad():
        out = model.eval()(images, heads=("depth",))
    torch.testing.assert_close(out.depth, reference.depth, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.depth_conf, reference.depth_conf, atol=1e-5, rtol=1e-5)
    mixture = out.mixture
    assert mixture.gate.shape == (1, 2, 4, 140, 182)
    torch.testing.assert_close(mixture.gate, torch.full_like(mixture.gate, 0.25))
    torch.testing.assert_close(mixture.entropy, torch.full_like(mixture.entropy, math.log(4)))
    for k in range(4):
        torch.testing.assert_close(mixture.expert_depth[:, :, k], reference.depth, atol=1e-5, rtol=1e-5)


def test_noise_makes_experts_differ_but_keeps_the_gate_uniform(fixture):
    config = preset("tiny").with_moe(MoEConfig(num_experts=3))
    model = VGGT(config).eval()
    dpt_state = {k[len("depth_head."):]: v for k, v in fixture["state_dict"].items() if k.startswith("depth_head.")}
    model.depth_head.init_from_dpt(dpt_state)
    model.depth_head.perturb_experts(0.05, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model(fixture["cases"][IMAGES_CASE]["images"], heads=("depth",))
    depths = out.mixture.expert_depth
    assert (depths[:, :, 0] - depths[:, :, 1]).abs().max() > 1e-4
    torch.testing.assert_close(out.mixture.gate, torch.full_like(out.mixture.gate, 1 / 3))


def test_spread_offsets_the_experts_log_depth_evenly(fixture):
    config = preset("tiny").with_moe(MoEConfig(num_experts=3))
    model = VGGT(config).eval()
    dpt_state = {k[len("depth_head."):]: v for k, v in fixture["state_dict"].items() if k.startswith("depth_head.")}
    model.depth_head.init_from_dpt(dpt_state)
    images = fixture["cases"][IMAGES_CASE]["images"]
    with torch.no_grad():
        copies = model(images, heads=("depth",)).mixture.expert_depth
        model.depth_head.spread_experts(0.1)
        spread = model(images, heads=("depth",)).mixture
    for k, factor in enumerate((math.exp(-0.1), 1.0, math.exp(0.1))):
        torch.testing.assert_close(spread.expert_depth[:, :, k], copies[:, :, k] * factor, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(spread.expert_conf, model(images, heads=("depth",)).mixture.expert_conf)


def test_fusion_modes_by_hand():
    expert_depth = torch.tensor([1.0, 3.0, 10.0]).view(1, 1, 3, 1, 1)
    expert_conf = torch.tensor([2.0, 4.0, 8.0]).view(1, 1, 3, 1, 1)
    logits = torch.log(torch.tensor([0.2, 0.7, 0.1])).view(1, 1, 3, 1, 1)
    depth, conf = fuse(expert_depth, expert_conf, logits, "winner")
    assert depth.item() == 3.0 and conf.item() == 4.0
    depth, conf = fuse(expert_depth, expert_conf, logits, "mean")
    assert depth.item() == pytest.approx(0.2 * 1 + 0.7 * 3 + 0.1 * 10)
    assert conf.item() == pytest.approx(0.2 * 2 + 0.7 * 4 + 0.1 * 8)
    with pytest.raises(ValueError, match="unknown fusion"):
        fuse(expert_depth, expert_conf, logits, "median")


def test_surface_fusion_averages_the_winners_surface_and_nothing_across_an_edge():
    """Experts 1 m, 3 m, 3.5 m, winner 3 m: 3.5 m is within 20% (its surface), 1 m is the other
    side of an edge and takes no part; where every expert agrees it is the mixture mean."""
    expert_depth = torch.tensor([1.0, 3.0, 3.5]).view(1, 1, 3, 1, 1)
    expert_conf = torch.tensor([2.0, 4.0, 8.0]).view(1, 1, 3, 1, 1)
    logits = torch.log(torch.tensor([0.2, 0.7, 0.1])).view(1, 1, 3, 1, 1)
    depth, conf = fuse(expert_depth, expert_conf, logits, "surface")
    assert depth.item() == pytest.approx((0.7 * 3.0 + 0.1 * 3.5) / 0.8)
    assert conf.item() == pytest.approx((0.7 * 4.0 + 0.1 * 8.0) / 0.8)
    close = torch.tensor([2.9, 3.0, 3.1]).view(1, 1, 3, 1, 1)
    torch.testing.assert_close(fuse(close, expert_conf, logits, "surface"), fuse(close, expert_conf, logits, "mean"))
    apart = torch.tensor([1.0, 3.0, 10.0]).view(1, 1, 3, 1, 1)
    torch.testing.assert_close(fuse(apart, expert_conf, logits, "surface"), fuse(apart, expert_conf, logits, "winner"))


def test_temperature_sharpens_the_gate(fixture):
    config = preset("tiny").with_moe(MoEConfig(num_experts=2, temperature=0.5))
    model = VGGT(config).eval()
    torch.nn.init.normal_(model.depth_head.gate.conv2.weight, std=0.1)
    images = fixture["cases"][IMAGES_CASE]["images"]
    with torch.no_grad():
        sharp = model(images, heads=("depth",)).mixture.entropy.mean()
        model.depth_head.temperature = 1.0
        soft = model(images, heads=("depth",)).mixture.entropy.mean()
    assert sharp < soft


def test_winner_index_and_entropy_agree_with_the_gate(fixture):
    model = VGGT(preset("tiny").with_moe()).eval()
    torch.nn.init.normal_(model.depth_head.gate.conv2.weight, std=1.0)
    with torch.no_grad():
        mixture = model(fixture["cases"]["s1_126x98"]["images"], heads=("depth",)).mixture
    gate = mixture.gate
    assert torch.equal(mixture.winner, gate.argmax(dim=2))
    torch.testing.assert_close(mixture.entropy, -(gate * gate.log()).sum(dim=2))
    torch.testing.assert_close(gate.sum(dim=2), torch.ones_like(mixture.entropy))
    chosen = mixture.expert_depth.gather(2, mixture.winner[:, :, None]).squeeze(2)
    torch.testing.assert_close(mixture.depth, chosen)


def test_head_only_checkpoint_loads_on_top_of_a_vggt_checkpoint(fixture, published_file, tmp_path):
    config = preset("tiny").with_moe(MoEConfig(num_experts=2))
    tuned = VGGT(config)
    load_vggt_weights(tuned, published_file)
    with torch.no_grad():
        for param in tuned.depth_head.parameters():
            param.add_(0.01 * torch.randn_like(param))
    head_dir = save_model(tuned, tmp_path / "head", metadata={"description": "tuned head"}, head_only=True)
    model, description = load_any(published_file, preset_name="tiny", moe_head=head_dir)
    assert "depth head from" in description
    images = fixture["cases"][IMAGES_CASE]["images"]
    with torch.no_grad():
        expected = tuned.eval()(images, heads=("camera", "depth"))
        got = model(images, heads=("camera", "depth"))
    torch.testing.assert_close(got.depth, expected.depth, rtol=0, atol=0)
    torch.testing.assert_close(got.mixture.gate_logits, expected.mixture.gate_logits, rtol=0, atol=0)
    # A head saved for another expert count is refused with a clear message.
    other = VGGT(preset("tiny").with_moe(MoEConfig(num_experts=3)))
    with pytest.raises(CheckpointError, match="depth head"):
        load_head_weights(other, head_dir)
    # A head-only folder is not a whole model.
    with pytest.raises(CheckpointError, match="on top of a VGGT checkpoint"):
        load_any(head_dir)


@pytest.mark.parametrize("moe", [MoEConfig(scope="fusion"), MoEConfig(scope="fusion", gate_image=True, gate_layers=2)])
def test_whole_moe_model_round_trips(fixture, published_file, tmp_path, moe):
    model = VGGT(preset("tiny").with_moe(moe))
    load_vggt_weights(model, published_file)
    torch.nn.init.normal_(model.depth_head.gate.conv2.weight, std=1.0)  # a gate that decides something
    folder = save_model(model, tmp_path / "moe")
    loaded, _ = load_any(folder)
    assert loaded.config == model.config
    images = fixture["cases"]["s1_126x98"]["images"]
    with torch.no_grad():
        torch.testing.assert_close(loaded(images).depth, model.eval()(images).depth, rtol=0, atol=0)


def test_density_head_round_trips_and_is_not_mistaken_for_a_dpt_head(fixture, published_file, tmp_path):
    """A trained mixture-density head has no expert or gate modules: its file must load as
    itself, not be re-initialised from a DPT head."""
    model = VGGT(preset("tiny").with_moe(MoEConfig(num_experts=3, scope="density")))
    load_vggt_weights(model, published_file)
    assert not model.depth_head.experts and model.depth_head.gate is None
    torch.nn.init.normal_(model.depth_head.density[2].weight, std=0.5)  # components and weights that differ
    folder = save_model(model, tmp_path / "density")
    loaded, description = load_any(folder)
    assert "initialised from" not in description
    images = fixture["cases"]["s1_126x98"]["images"]
    with torch.no_grad():
        out, reference = loaded(images, heads=("depth",)), model.eval()(images, heads=("depth",))
    torch.testing.assert_close(out.depth, reference.depth, rtol=0, atol=0)
    assert out.mixture.expert_depth.shape[2] == 3


def test_density_head_decodes_the_highest_weight_component(fixture, published_file):
    """The decoded depth is one component's, never a blend: the winner's mean, picked by the
    weight channels of the same last layer; spread offsets the means as for experts."""
    model = VGGT(preset("tiny").with_moe(MoEConfig(num_experts=3, scope="density", fusion="winner")))
    load_vggt_weights(model, published_file)
    head = model.depth_head
    images = fixture["cases"]["s1_126x98"]["images"]
    with torch.no_grad():
        copies = model.eval()(images, heads=("depth",)).mixture.expert_depth
        head.spread_experts(0.1)
        head.density[2].bias[6 + 2] = 5.0  # component 2 (the farthest) takes the weight everywhere
        out = model(images, heads=("depth",))
    for k, factor in enumerate((math.exp(-0.1), 1.0, math.exp(0.1))):
        torch.testing.assert_close(out.mixture.expert_depth[:, :, k], copies[:, :, k] * factor, rtol=1e-5, atol=1e-6)
    assert bool((out.mixture.winner == 2).all())
    torch.testing.assert_close(out.depth, out.mixture.expert_depth[:, :, 2])


def test_gate_that_reads_the_image_starts_uniform_and_places_switches_by_the_image(fixture):
    """gate_image: the gate sees the frames; a fresh head is still uniform, the experts do not
    see the image, and once the gate is trained its logits follow a change of the image."""
    config = preset("tiny").with_moe(MoEConfig(num_experts=2, gate_image=True, gate_layers=2))
    model = VGGT(config).eval()
    images = fixture["cases"][IMAGES_CASE]["images"]
    with torch.no_grad():
        fresh = model(images, heads=("depth",)).mixture
        torch.testing.assert_close(fresh.gate, torch.full_like(fresh.gate, 0.5))
        torch.nn.init.normal_(model.depth_head.gate.conv2.weight, std=1.0)
        before = model(images, heads=("depth",)).mixture
        shifted = images.clone()
        shifted[..., :, :, 40:] = 1.0 - shifted[..., :, :, 40:]
        tokens = model.aggregator(shifted.unsqueeze(0), config.layers_for(("depth",)))
        image_hw = tuple(images.shape[-2:])
        with pytest.raises(ValueError, match="reads the input image"):
            model.depth_head.mixture(tokens, model.aggregator.patch_start_idx, image_hw)
        after_same_tokens = model.depth_head.mixture(
            {k: v.float() for k, v in tokens.items()}, model.aggregator.patch_start_idx, image_hw, images.unsqueeze(0))
        after_shifted = model.depth_head.mixture(
            {k: v.float() for k, v in tokens.items()}, model.aggregator.patch_start_idx, image_hw, shifted.unsqueeze(0))
    assert len(model.depth_head.gate.mid) == 1
    torch.testing.assert_close(after_same_tokens.expert_depth, after_shifted.expert_depth)  # experts: no image
    assert (after_same_tokens.gate_logits - after_shifted.gate_logits).abs().max() > 1e-3
    assert (before.gate_logits - after_shifted.gate_logits).abs().max() > 1e-3


def test_default_moe_head_stays_within_the_cost_budget():
    """vggt_1b at 518x518: the default MoE head adds at most 1% parameters and 6% FLOPs."""
    base = count_params_and_flops(preset("vggt_1b"))
    moe = count_params_and_flops(preset("vggt_1b").with_moe())
    assert moe[0] / base[0] - 1 <= 0.01
    assert moe[1] / base[1] - 1 <= 0.06
    assert moe[1] > base[1] and moe[0] > base[0]


def test_config_rejects_bad_moe_settings():
    for bad in [dict(num_experts=0), dict(scope="all"), dict(fusion="median"), dict(temperature=0.0), dict(gate_layers=0)]:
        with pytest.raises(ValueError):
            MoEConfig(**bad)
    with pytest.raises(ValueError, match="depth_head"):
        dataclasses.replace(preset("tiny"), depth_head="unet")
