"""ONNX export and the onnxruntime backend: parity with the PyTorch forward (fp32, 1e-4 relative),
the manifest, the engine and moe3d-infer on both backends, and the errors a user meets."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from moe3d_ros.cli import eval as eval_cli
from moe3d_ros.cli import export as export_cli
from moe3d_ros.cli import infer as infer_cli
from moe3d_ros.inference.engine import EngineConfig, InferenceEngine
from moe3d_ros.io.checkpoint import DEMO_MODEL_DIR, load_model, save_model
from moe3d_ros.inference.onnx_manifest import ExportError, read_manifest
from moe3d_ros.io.onnx_export import ExportedForward, cast_for_export, export_onnx, parse_frame_counts
from moe3d_ros.model import VGGT, MoEConfig, preset

ort = pytest.importorskip("onnxruntime", reason="the optional extra .[onnx] is not installed")
from moe3d_ros.inference.onnx_backend import BackendUnavailable, OnnxModel, parse_provider_options, resolve_providers  # noqa: E402

TOLERANCE = 1e-4  # relative: max |onnxruntime - torch| / max |torch|
TIE_MARGIN = 1e-3  # gate logits; the runtimes' logits differ by <= 5e-5 on the bundled demo model (measured)
WINNER_OUTPUTS = ("depth", "depth_conf")  # taken from the winning expert with fusion "winner"


def relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    return float(np.abs(actual - expected).max() / max(np.abs(expected).max(), 1e-12))


def tiny_model(moe: bool, img_size: int = 518) -> VGGT:
    """The parity fixture's configuration with random weights (img_size: the width preprocessing makes)."""
    torch.manual_seed(0)
    config = preset("tiny").with_moe(MoEConfig(num_experts=3, gate_image=True)) if moe else preset("tiny")
    model = VGGT(dataclasses.replace(config, img_size=img_size)).eval()
    if moe:  # a gate that decides (a fresh one is uniform: every pixel a tie)
        torch.nn.init.normal_(model.depth_head.gate.conv2.weight, std=0.5)
    with torch.no_grad():  # a field of view of about 1 rad, not relu's 0 (an infinite focal length)
        model.camera_head.pose_branch.fc2.bias[7:9] += 0.3
    return model


def assert_same_forward(model: VGGT, onnx_path, frames: int, height: int, width: int) -> None:
    """Every output within TOLERANCE; the winner's depth and confidence away from gate ties (pixels
    whose top two gate logits are closer than TIE_MARGIN, where either runtime may pick either
    expert), and such ties under 1% of the pixels."""
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    images = torch.rand(frames, 3, height, width, generator=torch.Generator().manual_seed(frames))
    with torch.no_grad():
        expected = [t.numpy() for t in ExportedForward(model)(images)]
    actual = session.run(None, {"images": images.numpy()})
    names = [o.name for o in session.get_outputs()]
    assert all(a.shape == e.shape for a, e in zip(actual, expected))
    decided = np.ones(expected[0].shape, bool)
    if "gate_logits" in names:
        top_two = np.sort(expected[names.index("gate_logits")], axis=1)[:, -2:]
        decided = top_two[:, 1] - top_two[:, 0] >= TIE_MARGIN
        assert decided.mean() > 0.99, decided.mean()
    errors = {name: relative_error(a[decided], e[decided]) if name in WINNER_OUTPUTS else relative_error(a, e)
              for name, a, e in zip(names, actual, expected)}
    assert max(errors.values()) < TOLERANCE, errors


@pytest.mark.slow  # exports ONNX (12-30 s a file on 2 cores)
@pytest.mark.parametrize("moe", [False, True], ids=["dpt", "moe"])
def test_tiny_parity_configuration_exports_with_onnxruntime_parity(tmp_path, moe):
    model = tiny_model(moe)
    manifest = export_onnx(model, [2], 70, 56, tmp_path / "tiny.onnx", "tiny parity configuration")
    expected_outputs = ["depth", "depth_conf", "pose_enc"] + (["gate_logits", "expert_depth", "expert_conf"] if moe else [])
    assert list(manifest.outputs) == expected_outputs
    session = ort.InferenceSession(str(tmp_path / "tiny.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["images"] and [o.name for o in session.get_outputs()] == expected_outputs
    assert_same_forward(model, tmp_path / "tiny.onnx", 2, 56, 70)
    data = json.loads((tmp_path / "tiny.json").read_text())
    assert data["frames"] == {"2": "tiny.onnx"} and data["image_size"] == [70, 56] and data["precision"] == "fp32"
    assert data["depth_head"] == ("moe" if moe else "dpt") and data["num_experts"] == (3 if moe else 0)
    assert data["opset"] == 18 and data["package_version"] and data["preset_config"]["embed_dim"] == 64


@pytest.mark.slow  # exports ONNX (12-30 s a file on 2 cores)
def test_the_bundled_demo_model_exports_with_onnxruntime_parity(tmp_path):
    """The MoE model (its DPT-head partner shares every module but the experts and the gate, which
    the tiny parity configuration covers for both heads)."""
    model, _ = load_model(DEMO_MODEL_DIR)
    export_onnx(model, [2], 224, 168, tmp_path / "demo.onnx")
    assert_same_forward(model, tmp_path / "demo.onnx", 2, 168, 224)


@pytest.mark.slow  # exports ONNX (12-30 s a file on 2 cores)
def test_one_dynamic_export_serves_every_window_size_with_one_session(tmp_path):
    """The frame axis stays dynamic: one file, one ONNX Runtime session (one copy of the weights)
    for windows of 1 to 4 frames, each at parity with the torch forward. (A frame count the
    exporter pinned would make ONNX Runtime refuse every other size.)"""
    model = tiny_model(moe=True, img_size=224)
    manifest = export_onnx(model, [1, 2, 3, 4], 224, 168, tmp_path / "model.onnx", "tiny test model")
    assert manifest.files == {count: "model.onnx" for count in (1, 2, 3, 4)}
    assert sorted(p.name for p in tmp_path.glob("*.onnx")) == ["model.onnx"]
    for frames in (1, 2, 3, 4):
        assert_same_forward(model, tmp_path / "model.onnx", frames, 168, 224)
    onnx = OnnxModel(tmp_path / "model.onnx", ["CPUExecutionProvider"])
    for frames in (1, 4, 2):
        assert onnx(torch.rand(frames, 3, 168, 224)).depth.shape == (1, frames, 168, 224)
    assert len(onnx._sessions) == 1


def weight_bytes(path: Path) -> int:
    """The bytes of an ONNX file's initializers (the file adds the graph and its metadata)."""
    import onnx
    from onnx import numpy_helper

    return sum(numpy_helper.to_array(t).nbytes for t in onnx.load(str(path)).graph.initializer)


FP16_TOLERANCE = {"expert_depth": 5e-3, "expert_conf": 5e-3}  # relative, per pixel; fp16 keeps 11 bits (5e-4)


@pytest.mark.slow  # exports ONNX (about 50 s on 2 cores)
def test_an_fp16_export_halves_the_weights_and_matches_the_torch_fp16_forward(tmp_path):
    """moe3d-export --precision fp16 on the bundled demo model: fp32 images in and fp32 outputs out,
    half the weight bytes, and every window size at parity with the torch forward in fp16: each expert's
    depth and confidence within 5e-3 of it per pixel (measured: <= 1e-3), the gate's logits within
    0.1, the pose encoding within 5e-3, the published depth within 1% at 99% of pixels (a winner
    tie may flip a pixel)."""
    model, _ = load_model(DEMO_MODEL_DIR)
    assert export_cli.main(["--frames", "1-3", "--image-size", "224", "168", "--precision", "fp16",
                            "--out", str(tmp_path / "fp16.onnx")]) == 0
    fp32_bytes = sum(t.numel() * 4 for t in model.state_dict().values() if t.is_floating_point())
    assert weight_bytes(tmp_path / "fp16.onnx") < 0.55 * fp32_bytes  # measured: 5.5 MB against 10.8
    assert json.loads((tmp_path / "fp16.json").read_text())["precision"] == "fp16"
    session = ort.InferenceSession(str(tmp_path / "fp16.onnx"), providers=["CPUExecutionProvider"])
    assert [i.type for i in session.get_inputs()] == ["tensor(float)"]
    half = ExportedForward(cast_for_export(model, "fp16"))
    names = [o.name for o in session.get_outputs()]
    for frames in (1, 2, 3):
        images = torch.rand(frames, 3, 168, 224, generator=torch.Generator().manual_seed(frames))
        with torch.no_grad():
            expected = dict(zip(names, (t.numpy() for t in half(images))))
        actual = dict(zip(names, session.run(None, {"images": images.numpy()})))
        assert all(a.dtype == np.float32 for a in actual.values())
        for name, tolerance in FP16_TOLERANCE.items():
            error = np.abs(actual[name] - expected[name]) / np.abs(expected[name])
            assert error.max() < tolerance, (frames, name, error.max())
        assert np.abs(actual["gate_logits"] - expected["gate_logits"]).max() < 0.1
        depth_error = np.abs(actual["depth"] - expected["depth"]) / expected["depth"]
        assert np.quantile(depth_error, 0.99) < 0.01, (frames, np.quantile(depth_error, 0.99))
        assert np.abs(actual["pose_enc"] - expected["pose_enc"]).max() < 5e-3  # measured: 1e-3
    onnx = OnnxModel(tmp_path / "fp16.onnx", ["CPUExecutionProvider"])
    assert "fp16" in onnx.description


@pytest.fixture(scope="module")
def exported_moe(tmp_path_factory):
    """The tiny MoE model at 224 px, exported as fixed-shape files (as earlier exports are) for
    windows of 1 and 3 frames at 224x168."""
    folder = tmp_path_factory.mktemp("onnx")
    model = tiny_model(moe=True, img_size=224)
    save_model(model, folder / "checkpoint")
    export_onnx(model, [1, 3], 224, 168, folder / "model.onnx", "tiny test model", dynamic=False)
    return model, folder


@pytest.mark.slow  # exports ONNX (12-30 s a file on 2 cores)
def test_several_window_sizes_get_a_file_each_and_the_manifest_names_what_to_export(exported_moe):
    _, folder = exported_moe
    assert sorted(p.name for p in folder.glob("*.onnx")) == ["model.f1.onnx", "model.f3.onnx"]
    manifest, where = read_manifest(folder / "model.onnx")
    assert where == folder and manifest.files == {1: "model.f1.onnx", 3: "model.f3.onnx"}
    assert manifest.unserved([1, 3], (168, 224)) is None
    line = manifest.unserved(range(1, 5), (168, 224))
    assert "not 2,4 at 224x168" in line and "moe3d-export --frames 1-4 --image-size 224 168" in line
    line = manifest.unserved([3], (126, 224))
    assert "not 3 at 224x126" in line and "--image-size 224 126" in line


@pytest.mark.slow  # exports ONNX (12-30 s a file on 2 cores)
def test_engine_gives_the_same_predictions_on_both_backends(exported_moe):
    model, folder = exported_moe
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (120, 160, 3), dtype=np.uint8) for _ in range(3)]
    torch_engine = InferenceEngine(model, EngineConfig(device="cpu"))
    onnx_engine = InferenceEngine(OnnxModel(folder / "model.json"), EngineConfig(encoder_cache=4))
    assert onnx_engine.backend == "onnxruntime" and onnx_engine.provider == "CPUExecutionProvider"
    assert onnx_engine.notes and "encoder_cache" in onnx_engine.notes[0]
    for fusion in ("winner", "surface", "mean"):
        torch_engine.set_fusion(fusion)
        onnx_engine.set_fusion(fusion)
        expected, actual = torch_engine.run(images), onnx_engine.run(images)
        for name in ("depth", "depth_conf", "extrinsics", "intrinsics", "gate_entropy", "expert_spread"):
            assert relative_error(getattr(actual, name), getattr(expected, name)) < TOLERANCE, (fusion, name)
        assert (actual.winner == expected.winner).mean() > 0.999 and actual.num_experts == expected.num_experts == 3
        assert np.array_equal(actual.images, expected.images)
    with pytest.raises(ValueError, match="not 2 at 224x168: export it with moe3d-export --frames 1-3"):
        onnx_engine.run(images[:2])


@pytest.mark.slow  # exports ONNX (12-30 s a file on 2 cores)
def test_moe3d_infer_runs_on_both_backends_with_the_same_results(exported_moe, tmp_path, capsys):
    _, folder = exported_moe
    common = ["--synthetic", "900000", "--frames", "3", "--device", "cpu"]
    assert infer_cli.main(common + ["--checkpoint", str(folder / "checkpoint"), "--out", str(tmp_path / "torch")]) == 0
    assert infer_cli.main(common + ["--backend", "onnxruntime", "--onnx-model", str(folder / "model.onnx"),
                                    "--onnx-providers", "CPUExecutionProvider", "--out", str(tmp_path / "onnx")]) == 0
    assert "onnxruntime CPUExecutionProvider fp32" in capsys.readouterr().out
    expected, actual = np.load(tmp_path / "torch" / "predictions.npz"), np.load(tmp_path / "onnx" / "predictions.npz")
    for name in ("depth", "depth_conf", "extrinsics"):
        assert relative_error(actual[name], expected[name]) < TOLERANCE, name
    assert infer_cli.main(common[:2] + ["--frames", "2", "--backend", "onnxruntime", "--onnx-model", str(folder / "model.onnx")]) == 2


CLOUD_METRICS = ("acc_", "comp_", "nc_")


@pytest.mark.slow  # exports ONNX (12-30 s a file on 2 cores)
def test_moe3d_eval_scores_an_export_as_it_scores_the_checkpoint(exported_moe, tmp_path):
    _, folder = exported_moe
    common = ["--protocol", "synthetic", "--scenes", "1", "--frames", "3", "--figures", "0", "--device", "cpu"]
    assert eval_cli.main(common + ["--checkpoint", str(folder / "checkpoint"), "--out", str(tmp_path / "torch")]) == 0
    assert eval_cli.main(common + ["--backend", "onnxruntime", "--onnx-model", str(folder / "model.onnx"), "--out", str(tmp_path / "onnx")]) == 0
    expected = json.loads((tmp_path / "torch" / "results.json").read_text())["summary"]
    actual = json.loads((tmp_path / "onnx" / "results.json").read_text())["summary"]
    assert set(actual) == set(expected) == {"moe_winner", "moe_surface", "moe_mean"}
    for system, metrics in expected.items():
        assert set(actual[system]) == set(metrics) and {"abs_rel", "delta1", "boundary_f1"} <= set(metrics)
        for name, value in metrics.items():  # the cloud metrics go through a similarity fit of a random
            rel = 1e-2 if name.startswith(CLOUD_METRICS) else 1e-3  # model's cloud: 1e-6 in depth moves them ~1e-3
            assert actual[system][name] == pytest.approx(value, rel=rel, abs=1e-6), (system, name)
    assert "onnxruntime CPUExecutionProvider" in (tmp_path / "onnx" / "report.md").read_text()


def test_execution_providers_default_to_what_is_installed_and_unknown_ones_are_refused():
    assert resolve_providers()[-1] == "CPUExecutionProvider"
    assert resolve_providers(["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    with pytest.raises(BackendUnavailable, match=r"onnx_providers \['FancyExecutionProvider'\] not installed"):
        resolve_providers(["FancyExecutionProvider"])


def test_provider_options_parse_from_ros_strings_and_bad_entries_say_how_to_write_them():
    profile = "images:1x3x392x518"
    assert parse_provider_options(["TensorrtExecutionProvider:trt_fp16_enable=True",
                                   f"TensorrtExecutionProvider:trt_profile_min_shapes={profile}",
                                   "CUDAExecutionProvider:device_id=1"]) == {
        "TensorrtExecutionProvider": {"trt_fp16_enable": "True", "trt_profile_min_shapes": profile},
        "CUDAExecutionProvider": {"device_id": "1"}}
    for entry in ("trt_fp16_enable=True", "TensorrtExecutionProvider:trt_fp16_enable", "Tensorrt:a=b", "TensorrtExecutionProvider:=1"):
        with pytest.raises(ValueError, match="write 'Provider:key=value'"):
            parse_provider_options([entry])


@pytest.mark.slow  # exports ONNX (12-30 s a file on 2 cores)
def test_provider_options_reach_every_session_and_options_for_a_provider_not_run_are_refused(exported_moe, monkeypatch):
    """What onnx_provider_options names goes to ONNX Runtime as is, in the providers' order (the
    CPU provider takes options too; ONNX Runtime does not echo them back, so the call is recorded)."""
    _, folder = exported_moe
    calls = []
    real_session = ort.InferenceSession

    def recording_session(*args, **kwargs):
        calls.append(kwargs)
        return real_session(*args, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", recording_session)
    options = {"CPUExecutionProvider": {"arena_extend_strategy": "kSameAsRequested"}}
    model = OnnxModel(folder / "model.onnx", ["CPUExecutionProvider"], provider_options=options)
    model(torch.rand(3, 3, 168, 224))  # the second file's session
    assert len(calls) == 2 and all(call["provider_options"] == [options["CPUExecutionProvider"]] for call in calls)
    with pytest.raises(BackendUnavailable, match=r"onnx_provider_options names \['TensorrtExecutionProvider'\], which will not run"):
        OnnxModel(folder / "model.onnx", ["CPUExecutionProvider"], provider_options={"TensorrtExecutionProvider": {"trt_fp16_enable": "True"}})


@pytest.mark.slow  # exports ONNX (12-30 s a file on 2 cores)
def test_damaged_or_incomplete_exports_are_refused_with_what_to_do(exported_moe, tmp_path):
    _, folder = exported_moe
    with pytest.raises(ExportError, match="model.json not found.*moe3d-export"):
        read_manifest(tmp_path / "model.onnx")
    (tmp_path / "model.json").write_text("{not json")
    with pytest.raises(ExportError, match="not readable JSON"):
        read_manifest(tmp_path / "model.onnx")
    data = json.loads((folder / "model.json").read_text())
    (tmp_path / "model.json").write_text(json.dumps(data))
    with pytest.raises(ExportError, match=r"lists \['model.f1.onnx', 'model.f3.onnx'\], missing beside it"):
        read_manifest(tmp_path / "model.json")
    (tmp_path / "model.json").write_text(json.dumps({**data, "format": "other"}))
    with pytest.raises(ExportError, match="not a moe3d-export manifest"):
        read_manifest(tmp_path / "model.json")


def test_frame_counts_parse_as_counts_ranges_and_lists():
    assert parse_frame_counts("4") == [4] and parse_frame_counts("1-4") == [1, 2, 3, 4] and parse_frame_counts("4,2") == [2, 4]
    for bad in ("0", "four", "", "3-x"):
        with pytest.raises(ValueError, match="frames"):
            parse_frame_counts(bad)


@pytest.mark.slow  # exports ONNX (12-30 s a file on 2 cores)
def test_moe3d_export_refuses_what_it_cannot_export_with_one_line_and_exit_code_1(exported_moe, tmp_path, caplog):
    model, folder = exported_moe
    published = tmp_path / "published.safetensors"
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(published))
    head_only = save_model(model, tmp_path / "head", head_only=True)
    no_camera = save_model(VGGT(model.config.with_heads(("depth",))), tmp_path / "depth_only")
    cases = [
        (["--checkpoint", str(published), "--preset", "huge"], "unknown preset 'huge'"),
        (["--checkpoint", str(head_only)], "depth_head"),
        (["--checkpoint", str(no_camera)], "no camera head"),
        (["--checkpoint", str(folder / "checkpoint"), "--image-size", "100", "70"], "multiples of the patch size 14"),
        (["--checkpoint", str(folder / "checkpoint"), "--frames", "0"], "counts must be >= 1"),
        (["--checkpoint", str(tmp_path / "absent")], "does not exist"),
    ]
    for args, expected in cases:
        caplog.clear()
        argv = ["--image-size", "224", "168", *args, "--out", str(tmp_path / "x.onnx")]
        assert export_cli.main(argv) == 1, args
        errors = [r for r in caplog.records if r.levelname == "ERROR"]
        assert len(errors) == 1 and expected in errors[0].getMessage() and "\n" not in errors[0].getMessage(), (args, caplog.text)


def test_without_onnxruntime_the_torch_backend_works_and_the_error_says_what_to_install():
    script = (
        "import sys; sys.modules['onnxruntime'] = None\n"
        "from moe3d_ros.inference.onnx_backend import BackendUnavailable, OnnxModel, resolve_providers\n"
        "import moe3d_ros.ros.settings, moe3d_ros.inference.engine\n"
        "try:\n    resolve_providers()\nexcept BackendUnavailable as exc:\n    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "backend onnxruntime needs the onnxruntime package" in out.stdout and "pip install 'moe3d_ros[onnx]'" in out.stdout


@pytest.mark.slow  # exports ONNX (12-30 s a file on 2 cores)
def test_backend_benchmark_smoke_on_the_cpu():
    script = Path(__file__).resolve().parents[1] / "bench" / "bench_backends.py"
    run = subprocess.run([sys.executable, str(script), "--models", "tiny", "--repeats", "1", "--threads", "1"],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    row = next(line for line in run.stdout.splitlines() if line.startswith("| tiny VGGT preset"))
    assert "| 518x392 |" in row and "onnxruntime CPUExecutionProvider" in row
    assert float(row.split("|")[-2]) < TOLERANCE  # the two backends' depth, image to cloud
    assert "tiny: onnxruntime forward" in run.stdout and "target >= 1.3x" in run.stdout
