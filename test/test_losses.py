"""Training losses against values computed by hand."""
from __future__ import annotations

import math

import pytest
import torch

from moe3d_ros.model.geometry import cameras_to_pose_encoding, matrix_to_quaternion, pose_encoding_to_cameras, quaternion_to_matrix
from moe3d_ros.model.vggt import VGGTOutput
from moe3d_ros.model.heads.moe_head import MixtureOutput
from moe3d_ros.train.losses import (
    LossConfig,
    Targets,
    camera_loss,
    compute_losses,
    gate_entropy,
    gradient_loss,
    gradient_matching_loss,
    local_quantile_nll,
    local_quantile_targets,
    mixture_nll,
    WTA_RELAXATION,
    normalisation_scale,
    scale_invariant_loss,
    winner_takes_all_nll,
)


def _pixel(values):
    """A list of per-expert values -> [1, K, 1, 1] (expert axis at -3)."""
    return torch.tensor(values, dtype=torch.float64).view(1, -1, 1, 1)


def test_laplace_mixture_nll_of_a_known_two_component_mixture():
    target = torch.tensor([[[1.5]]], dtype=torch.float64)
    mu, conf, weights = [1.0, 2.5], [2.0, 4.0], [0.3, 0.7]
    # Laplace with scale b = 1/conf: p = conf/2 * exp(-conf * |t - mu|)
    p = [c / 2 * math.exp(-c * abs(1.5 - m)) for m, c in zip(mu, conf)]
    expected = -math.log(weights[0] * p[0] + weights[1] * p[1])
    nll = mixture_nll(_pixel(mu), _pixel(conf), torch.log(_pixel(weights)), target, torch.ones(1, 1, 1, dtype=torch.bool), "laplace")
    assert nll.item() == pytest.approx(expected, rel=1e-12)


def test_gaussian_mixture_nll_of_a_known_two_component_mixture():
    target = torch.tensor([[[0.2]]], dtype=torch.float64)
    mu, conf, weights = [0.0, 1.0], [1.0, 3.0], [0.5, 0.5]
    p = [c / math.sqrt(2 * math.pi) * math.exp(-0.5 * (c * (0.2 - m)) ** 2) for m, c in zip(mu, conf)]
    expected = -math.log(0.5 * p[0] + 0.5 * p[1])
    nll = mixture_nll(_pixel(mu), _pixel(conf), torch.log(_pixel(weights)), target, torch.ones(1, 1, 1, dtype=torch.bool), "gaussian")
    assert nll.item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("kind", ["log_gaussian", "log_laplace"])
def test_log_depth_mixture_nll_is_the_mixture_of_the_log_depth(kind):
    """MDA's form: densities of log depth, so an error costs its ratio: the NLL of (mu, t) is the
    plain mixture NLL of (log mu, log t); invalid zeros stay finite and do not count."""
    mu, conf, weights = [1.0, 4.0], [2.0, 5.0], [0.4, 0.6]
    target = torch.tensor([[[3.0, 0.0]]], dtype=torch.float64)
    valid = torch.tensor([[[True, False]]])
    two = lambda values: torch.tensor(values, dtype=torch.float64).view(1, -1, 1, 1).expand(1, -1, 1, 2)  # noqa: E731
    nll = mixture_nll(two(mu), two(conf), torch.log(two(weights)), target, valid, kind)
    plain = mixture_nll(torch.log(_pixel(mu)), _pixel(conf), torch.log(_pixel(weights)), torch.log(target[..., :1]),
                        valid[..., :1], kind.removeprefix("log_"))
    assert torch.isfinite(nll) and nll.item() == pytest.approx(plain.item(), rel=1e-12)
    near = mixture_nll(_pixel([1.0]), _pixel([1.0]), torch.zeros(1, 1, 1, 1, dtype=torch.float64),
                       torch.tensor([[[2.0]]], dtype=torch.float64), valid[..., :1], kind)
    far = mixture_nll(_pixel([10.0]), _pixel([1.0]), torch.zeros(1, 1, 1, 1, dtype=torch.float64),
                      torch.tensor([[[20.0]]], dtype=torch.float64), valid[..., :1], kind)
    assert near.item() == pytest.approx(far.item(), rel=1e-12)  # a factor of 2 costs the same at any range


def test_nll_is_stable_for_huge_errors():
    target = torch.tensor([[[1e4]]])
    nll = mixture_nll(_pixel([0.0, 1.0]).float(), _pixel([50.0, 50.0]).float(), torch.log(_pixel([0.5, 0.5])).float(), target,
                      torch.ones(1, 1, 1, dtype=torch.bool), "gaussian")
    assert torch.isfinite(nll)
    # Both components are far away: the NLL is the nearer component's -log(w p) to float precision.
    expected = -(math.log(0.5) + math.log(50) - 0.5 * math.log(2 * math.pi) - 0.5 * (50 * (1e4 - 1.0)) ** 2)
    assert nll.item() == pytest.approx(expected, rel=1e-5)


def test_invalid_pixels_do_not_count():
    mu, conf, log_w = _pixel([1.0]), _pixel([1.0]), torch.zeros(1, 1, 1, 1, dtype=torch.float64)
    target = torch.tensor([[[1.0]]], dtype=torch.float64)
    valid = torch.ones(1, 1, 1, dtype=torch.bool)
    base = mixture_nll(mu, conf, log_w, target, valid, "laplace")
    two = lambda x: torch.cat([x, x], dim=-1)  # noqa: E731
    bad_target = torch.tensor([[[1.0, 1e6]]], dtype=torch.float64)
    masked = mixture_nll(two(mu), two(conf), two(log_w), bad_target, torch.tensor([[[True, False]]]), "laplace")
    assert masked.item() == pytest.approx(base.item())


def test_entropy_gradient_pushes_gates_towards_one_hot():
    logits = torch.tensor([0.3, 0.1, -0.2], dtype=torch.float64).view(1, 3, 1, 1).requires_grad_()
    entropy = gate_entropy(torch.log_softmax(logits, dim=-3), torch.ones(1, 1, 1, dtype=torch.bool))
    entropy.backward()
    # Gradient descent raises the leading logit and lowers the others: the gate sharpens.
    assert logits.grad[0, 0] < 0 and logits.grad[0, 2] > 0
    with torch.no_grad():
        stepped = logits - 0.5 * logits.grad
        after = gate_entropy(torch.log_softmax(stepped, dim=-3), torch.ones(1, 1, 1, dtype=torch.bool))
    assert after < entropy
    uniform = gate_entropy(torch.log(torch.full((1, 4, 1, 1), 0.25)), torch.ones(1, 1, 1, dtype=torch.bool))
    assert uniform.item() == pytest.approx(math.log(4))


def test_normalisation_scale_by_hand():
    # One camera at the world origin looking at a fronto-parallel plane at depth 2; 1x3 image with
    # principal point at the middle pixel and f = 1: points (-2, 0, 2), (0, 0, 2), (2, 0, 2).
    depth = torch.full((1, 1, 1, 3), 2.0)
    intrinsics = torch.tensor([[[[1.0, 0, 1.0], [0, 1.0, 0.0], [0, 0, 1.0]]]])
    extrinsics = torch.cat([torch.eye(3), torch.zeros(3, 1)], dim=1)[None, None]
    scale = normalisation_scale(depth, torch.ones_like(depth, dtype=torch.bool), extrinsics, intrinsics)
    mean = (2 * math.sqrt(8) + 2) / 3
    assert scale.item() == pytest.approx(1 / mean)
    with pytest.raises(ValueError, match="no valid"):
        normalisation_scale(depth, torch.zeros_like(depth, dtype=torch.bool), extrinsics, intrinsics)


def _window(scale: float):
    generator = torch.Generator().manual_seed(0)
    depth = (torch.rand(1, 2, 6, 8, generator=generator) + 1.0) * scale
    valid = torch.ones_like(depth, dtype=torch.bool)
    valid[0, 1, 0, 0] = False
    intrinsics = torch.tensor([[5.0, 0, 3.5], [0, 5.0, 2.5], [0, 0, 1.0]]).expand(1, 2, 3, 3)
    rotation = quaternion_to_matrix(torch.tensor([0.1, 0.0, 0.05, 1.0]))
    extrinsics = torch.stack([torch.cat([torch.eye(3), torch.zeros(3, 1)], 1), torch.cat([rotation, torch.tensor([[0.3], [0.0], [0.1]]) * scale], 1)])[None]
    return Targets(depth=depth, valid=valid, extrinsics=extrinsics, intrinsics=intrinsics)


def _output(pose_enc_list=None):
    generator = torch.Generator().manual_seed(1)
    expert_depth = torch.rand(1, 2, 3, 6, 8, generator=generator) + 0.3
    expert_conf = 1 + torch.rand(1, 2, 3, 6, 8, generator=generator)
    logits = torch.randn(1, 2, 3, 6, 8, generator=generator)
    mixture = MixtureOutput(expert_depth, expert_conf, logits, expert_depth[:, :, 0], expert_conf[:, :, 0])
    return VGGTOutput(depth=mixture.depth, depth_conf=mixture.depth_conf, mixture=mixture, pose_enc_list=pose_enc_list or [])


def test_losses_are_invariant_to_the_ground_truth_scale():
    pose = [torch.zeros(1, 2, 9) + 0.1 * i for i in range(4)]
    cfg = LossConfig(entropy_weight=1e-2, gradient_weight=0.5, camera_weight=1.0)
    small = compute_losses(_output(pose), _window(1.0), cfg)
    large = compute_losses(_output(pose), _window(37.0), cfg)
    for key in ("nll", "entropy", "gradient", "camera", "total"):
        assert small[key].item() == pytest.approx(large[key].item(), rel=1e-5), key
    assert small["total"].item() == pytest.approx(
        (small["nll"] + 1e-2 * small["entropy"] + 0.5 * small["gradient"] + small["camera"]).item(), rel=1e-6
    )


def test_plain_dpt_head_is_a_one_expert_mixture():
    out = _output()
    plain = VGGTOutput(depth=out.depth, depth_conf=out.depth_conf)
    terms = compute_losses(plain, _window(1.0), LossConfig())
    assert terms["entropy"].item() == 0.0
    one = MixtureOutput(out.depth[:, :, None], out.depth_conf[:, :, None], torch.zeros_like(out.depth[:, :, None]), out.depth, out.depth_conf)
    as_mixture = compute_losses(VGGTOutput(depth=out.depth, depth_conf=out.depth_conf, mixture=one), _window(1.0), LossConfig())
    assert terms["nll"].item() == pytest.approx(as_mixture["nll"].item())


def test_gradient_loss_ignores_a_constant_offset():
    target = torch.rand(1, 1, 5, 5)
    valid = torch.ones_like(target, dtype=torch.bool)
    assert gradient_loss(target + 0.7, target, valid).item() == pytest.approx(0.0, abs=1e-7)
    ramp = torch.arange(5.0).expand(1, 1, 5, 5)
    # error grows by 1 per column: mean |dx| = 1, |dy| = 0 -> 0.5
    assert gradient_loss(target + ramp, target, valid).item() == pytest.approx(0.5, rel=1e-6)


def test_gradient_matching_ignores_scale_and_counts_misplaced_edges_at_every_scale():
    target = torch.ones(1, 1, 8, 8, dtype=torch.float64)
    target[..., 4:] = 2.0
    valid = torch.ones_like(target, dtype=torch.bool)
    assert gradient_matching_loss(3.0 * target, target, valid).item() == pytest.approx(0.0, abs=1e-12)
    flat = torch.ones_like(target)
    # The residual steps by -log 2 once per row, between columns 3 and 4: at scale 1 (8 x 8) 8 of
    # the 56 horizontal pairs, at scale 2 (4 x 4) 4 of 12; scales 4 and 8 sample columns 0 and 4,
    # where the step is 1 of 1 pair per row; vertical differences are 0.
    per_scale = [8 / 56, 4 / 12, 2 / 2, 0.0]  # scale 8 keeps column 0 only: no pair
    expected = math.log(2.0) * 0.5 * sum(per_scale) / 4
    assert gradient_matching_loss(flat, target, valid).item() == pytest.approx(expected, rel=1e-9)
    # An invalid pixel forms no pair: whatever is predicted there does not count.
    valid[..., 0, 0] = False
    noisy = flat.clone()
    noisy[..., 0, 0] = 1e6
    assert gradient_matching_loss(noisy, target, valid).item() == pytest.approx(gradient_matching_loss(flat, target, valid).item())


def test_scale_invariant_loss_ignores_each_frames_scale_and_weighs_relative_error():
    target = torch.rand(1, 2, 4, 5, dtype=torch.float64) + 0.5
    valid = torch.ones_like(target, dtype=torch.bool)
    per_frame_scale = torch.tensor([3.0, 0.2], dtype=torch.float64).view(1, 2, 1, 1)
    assert scale_invariant_loss(target * per_frame_scale, target, valid).item() == pytest.approx(0.0, abs=1e-12)
    # One pixel of 40 off by a factor e: its log ratio is 1 above the other 19 of its frame;
    # the frame's mean moves by 1/20, so |deviations| = 19/20 + 19 * 1/20, over 40 pixels.
    pred = target.clone()
    pred[0, 0, 0, 0] *= math.e
    assert scale_invariant_loss(pred, target, valid).item() == pytest.approx((19 / 20 + 19 / 20) / 40, rel=1e-9)
    # The same pixel after an invalid neighbour: invalid pixels count neither in the mean nor the shift.
    valid[0, 0, 0, 1] = False
    pred[0, 0, 0, 1] = 1e6
    assert scale_invariant_loss(pred, target, valid).item() == pytest.approx((18 / 19 + 18 / 19) / 39, rel=1e-9)


def test_window_scope_keeps_one_unit_for_all_frames_of_a_window():
    target = torch.rand(1, 2, 4, 5, dtype=torch.float64) + 0.5
    valid = torch.ones_like(target, dtype=torch.bool)
    one_scale = target * 3.0
    assert scale_invariant_loss(one_scale, target, valid, "window").item() == pytest.approx(0.0, abs=1e-12)
    two_scales = target * torch.tensor([3.0, 3.0 * math.e], dtype=torch.float64).view(1, 2, 1, 1)
    assert scale_invariant_loss(two_scales, target, valid, "frame").item() == pytest.approx(0.0, abs=1e-12)
    # frames a factor e apart: every log ratio is 0.5 from the window's mean
    assert scale_invariant_loss(two_scales, target, valid, "window").item() == pytest.approx(0.5, rel=1e-9)


def test_the_main_depth_loss_can_lead_and_the_likelihood_follow():
    out, window = _output(), _window(1.0)
    cfg = LossConfig(nll_weight=0.1, entropy_weight=0.0, scale_invariant_weight=1.0, scale_invariant_scope="window",
                     gradient_matching_weight=1.0)
    terms = compute_losses(out, window, cfg)
    expected = 0.1 * terms["nll"] + terms["scale_invariant"] + terms["gradient_matching"]
    assert terms["total"].item() == pytest.approx(expected.item(), rel=1e-6)
    with pytest.raises(ValueError, match="scale_invariant_scope"):
        LossConfig(scale_invariant_scope="pixel")
    with pytest.raises(ValueError, match="non-negative"):
        LossConfig(nll_weight=-1.0)


def test_scale_invariant_term_joins_the_total_only_with_a_weight():
    out, window = _output(), _window(1.0)
    assert "scale_invariant" not in compute_losses(out, window, LossConfig())
    terms = compute_losses(out, window, LossConfig(scale_invariant_weight=0.5))
    assert terms["total"].item() == pytest.approx((terms["nll"] + 1e-4 * terms["entropy"] + 0.5 * terms["scale_invariant"]).item(), rel=1e-6)
    with pytest.raises(ValueError, match="non-negative"):
        LossConfig(scale_invariant_weight=-1.0)


def test_pose_encoding_round_trip_and_camera_loss():
    rotation = quaternion_to_matrix(torch.tensor([0.2, -0.4, 0.1, 0.9]))
    extrinsics = torch.cat([rotation, torch.tensor([[0.5], [-1.0], [2.0]])], dim=1)[None]
    intrinsics = torch.tensor([[[300.0, 0, 259.0], [0, 310.0, 196.0], [0, 0, 1.0]]])
    encoding = cameras_to_pose_encoding(extrinsics, intrinsics, (392, 518))
    back_extrinsics, back_intrinsics = pose_encoding_to_cameras(encoding, (392, 518))
    torch.testing.assert_close(back_extrinsics, extrinsics, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(back_intrinsics[..., 0, 0], intrinsics[..., 0, 0])
    torch.testing.assert_close(back_intrinsics[..., 1, 1], intrinsics[..., 1, 1])
    assert camera_loss([encoding] * 4, encoding, 0.6).item() == 0.0
    worse = camera_loss([encoding + 1.0, encoding], encoding, 0.6)
    assert worse.item() == pytest.approx(0.6)  # only the first of two iterations is off, by 1 everywhere


@pytest.mark.parametrize("seed", range(5))
def test_matrix_to_quaternion_inverts_quaternion_to_matrix(seed):
    quat = torch.randn(16, 4, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    quat = quat / quat.norm(dim=-1, keepdim=True)
    quat = torch.where(quat[:, 3:] < 0, -quat, quat)
    torch.testing.assert_close(matrix_to_quaternion(quaternion_to_matrix(quat)), quat)


def test_winner_takes_all_trains_the_best_expert_and_teaches_the_gate_to_pick_it():
    """Relaxed WTA: the expert nearest the target gets 1 - eps of the likelihood gradient, the
    others share eps, and the gate's cross-entropy pulls it towards that expert."""
    target = torch.tensor([[[2.0]]], dtype=torch.float64)
    depth = _pixel([1.0, 1.9, 4.0]).requires_grad_(True)
    conf = _pixel([2.0, 2.0, 2.0])
    logits = _pixel([0.0, 0.0, 0.0]).requires_grad_(True)
    valid = torch.ones(1, 1, 1, dtype=torch.bool)
    loss = winner_takes_all_nll(depth, conf, torch.log_softmax(logits, dim=-3), target, valid, "laplace")
    loss.backward()
    grad = depth.grad.flatten()
    assert grad[1].abs() == pytest.approx((1 - WTA_RELAXATION) * 2.0)  # d/dmu of conf * |t - mu|
    assert grad[0].abs() == pytest.approx(WTA_RELAXATION / 2 * 2.0)
    assert logits.grad.flatten().argmin() == 1  # gradient descent raises the best expert's logit
    nll = [2.0 * abs(2.0 - mu) for mu in (1.0, 1.9, 4.0)]  # -log(conf / 2) + conf * |t - mu|, conf = 2
    expected = (1 - WTA_RELAXATION) * nll[1] + WTA_RELAXATION / 2 * (nll[0] + nll[2]) + math.log(3.0)
    assert loss.item() == pytest.approx(expected)


def _random_mixture_case(height: int, width: int) -> tuple[VGGTOutput, Targets]:
    """A 3-expert MoE output and all-valid targets for one 2-frame window, random but seeded."""
    torch.manual_seed(0)
    depth = torch.rand(1, 2, 3, height, width) + 0.5
    output = VGGTOutput(depth=depth[:, :, 0], depth_conf=torch.ones(1, 2, height, width) * 2)
    output.mixture = MixtureOutput(depth, torch.full_like(depth, 2.0), torch.randn(1, 2, 3, height, width), depth[:, :, 0],
                                   torch.ones(1, 2, height, width))
    targets = Targets(depth=torch.rand(1, 2, height, width) + 0.5, valid=torch.ones(1, 2, height, width, dtype=torch.bool),
                      extrinsics=torch.eye(3, 4).expand(1, 2, 3, 4).clone(), intrinsics=torch.eye(3).expand(1, 2, 3, 3).clone())
    return output, targets


def test_winner_takes_all_replaces_the_nll_in_the_total_only_when_asked():
    output, targets = _random_mixture_case(4, 5)
    config = LossConfig(entropy_weight=0.0)
    plain = compute_losses(output, targets, config)
    warm = compute_losses(output, targets, config, winner_takes_all=True)
    assert "wta" not in plain and plain["total"] == plain["nll"]
    assert warm["total"] == warm["wta"] and warm["nll"] == plain["nll"]
    with pytest.raises(ValueError, match="winner_takes_all_steps"):
        LossConfig(winner_takes_all_steps=-1)


def _step_edge(width: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    """[1, 1, 6, width] depth 1 on the left half and 2 on the right; all valid."""
    depth = torch.ones(1, 1, 6, width, dtype=torch.float64)
    depth[..., width // 2:] = 2.0
    return depth, torch.ones_like(depth, dtype=torch.bool)


def test_local_quantiles_split_at_an_edge_and_agree_on_surfaces():
    depth, valid = _step_edge()
    quantiles = local_quantile_targets(depth, valid, num_experts=3, window=5)  # [1, 1, 3, 6, 12]
    assert quantiles.shape == (1, 1, 3, 6, 12)
    row = quantiles[0, 0, :, 3]
    for column in (0, 1, 2, 3, 8, 9, 10, 11):  # more than 2 px from the edge: the experts agree
        assert torch.all(row[:, column] == depth[0, 0, 3, column])
    for column in (4, 5, 6, 7):  # within 2 px: nearest 1, farthest 2
        assert row[0, column] == 1.0 and row[2, column] == 2.0
    assert row[1, 5] == 1.0 and row[1, 6] == 2.0  # the median follows the majority of the square


def test_local_quantiles_with_a_step_ratio_agree_on_a_sloped_surface_and_split_at_a_step():
    """A floor-like ramp (5% per pixel) beside a 2x step: without the ratio the experts of a ramp
    pixel sit the square's depth range apart; with it they learn the pixel's own depth, and at the
    step they still learn both sides."""
    column = torch.arange(12, dtype=torch.float64)
    depth = torch.where(column < 6, 1.05**column, 2.0 * 1.05**column).expand(1, 1, 6, 12).clone()
    valid = torch.ones_like(depth, dtype=torch.bool)
    plain = local_quantile_targets(depth, valid, num_experts=2, window=3)
    stepped = local_quantile_targets(depth, valid, num_experts=2, window=3, step_ratio=1.1)
    ramp = (slice(None), slice(None), slice(None), slice(None), slice(0, 4))
    assert torch.all(plain[ramp][..., 0, :, 1:] < depth[..., 1:4])  # the ramp: nearest below the own depth
    assert torch.all(stepped[ramp] == depth[..., None, :, 0:4])  # with the ratio: the own depth
    assert torch.equal(stepped[..., 5:7], plain[..., 5:7])  # the two pixels of the step: both sides
    assert stepped[0, 0, 0, 3, 5] < 1.3 < 2.0 < stepped[0, 0, 1, 3, 5]
    with pytest.raises(ValueError, match="quantile_step_ratio"):
        LossConfig(quantile_step_ratio=0.9)


def test_local_quantiles_ignore_invalid_pixels():
    depth, valid = _step_edge()
    depth[..., 6:] = float("nan")
    valid[..., 6:] = False
    quantiles = local_quantile_targets(torch.nan_to_num(depth, 100.0), valid, num_experts=2, window=5)
    assert torch.all(quantiles[..., :6] == 1.0)  # the invalid side (100) never shows up
    assert torch.isnan(quantiles[..., 9:]).all()  # no valid pixel in the square


def test_local_quantile_warm_up_pulls_each_expert_to_its_side_and_the_gate_to_the_pixel_side():
    depth, valid = _step_edge()
    target = depth[0]  # [1, 6, 12]
    expert_depth = torch.full((1, 2, 6, 12), 1.5, dtype=torch.float64, requires_grad=True)
    conf = torch.full((1, 2, 6, 12), 2.0, dtype=torch.float64)
    logits = torch.zeros(1, 2, 6, 12, dtype=torch.float64, requires_grad=True)
    loss = local_quantile_nll(expert_depth, conf, torch.log_softmax(logits, dim=-3), target, valid[0], "laplace", 5)
    loss.backward()
    near = (slice(None), slice(None), 3, 6)  # first background pixel: nearest depth 1, farthest 2, its own 2
    assert expert_depth.grad[0, 0, 3, 6] > 0 and expert_depth.grad[0, 1, 3, 6] < 0  # descent: expert 0 nearer, 1 farther
    assert logits.grad[near][0, 1] < 0 < logits.grad[near][0, 0]  # the gate learns to pick the far expert there
    assert logits.grad[0, 0, 3, 5] < 0  # the foreground pixel beside it: the near expert
    assert torch.all(logits.grad[0, :, 3, 0] == 0)  # a surface pixel: both experts are right, no signal
    # every target is 1 or 2, 0.5 from each expert: -log(conf / 2) + conf * 0.5 = 1 per expert;
    # the uniform gate costs log 2 on the 4 x 6 edge pixels, 0 on the surface ones
    assert loss.item() == pytest.approx(1.0 + math.log(2.0) * 24 / 72)


def test_local_quantile_gate_term_over_the_band_weighs_the_edge_pixels_as_much_as_the_experts():
    depth, valid = _step_edge()
    target = depth[0]
    expert_depth = torch.full((1, 2, 6, 12), 1.5, dtype=torch.float64)
    conf = torch.full((1, 2, 6, 12), 2.0, dtype=torch.float64)
    grads = {}
    for scope in ("all", "band"):
        logits = torch.zeros(1, 2, 6, 12, dtype=torch.float64, requires_grad=True)
        loss = local_quantile_nll(expert_depth, conf, torch.log_softmax(logits, dim=-3), target, valid[0], "laplace", 5,
                                  gate_scope=scope)
        loss.backward()
        grads[scope] = logits.grad
    # the uniform gate's log 2 is now averaged over the 24 edge pixels alone, not all 72
    assert loss.item() == pytest.approx(1.0 + math.log(2.0))
    assert torch.allclose(grads["band"], grads["all"] * 72 / 24)  # same direction, the band's share undone
    assert torch.all(grads["band"][0, :, 3, 0] == 0)
    with pytest.raises(ValueError, match="quantile_gate_scope"):
        LossConfig(quantile_gate_scope="edges")


def test_local_quantile_warm_up_is_chosen_by_the_config_and_checked():
    output, targets = _random_mixture_case(6, 7)
    best = compute_losses(output, targets, LossConfig(entropy_weight=0.0), winner_takes_all=True)
    quantiles = compute_losses(output, targets, LossConfig(entropy_weight=0.0, warm_up_targets="local_quantiles", quantile_window=3),
                               winner_takes_all=True)
    assert quantiles["total"] == quantiles["wta"] and quantiles["nll"] == best["nll"]
    assert quantiles["wta"] != best["wta"]
    with pytest.raises(ValueError, match="warm_up_targets"):
        LossConfig(warm_up_targets="median")
    with pytest.raises(ValueError, match="quantile_window"):
        LossConfig(quantile_window=4)
