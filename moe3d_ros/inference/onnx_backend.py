"""The exported model run by ONNX Runtime, returning what the torch model returns (a VGGTOutput),
so preprocessing, post-processing, scale, filters and every output are the same code for both
backends. onnxruntime is an optional dependency (`pip install .[onnx]`), imported on first use.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .onnx_manifest import INPUT_NAME, read_manifest
from ..model import VGGTConfig, VGGTOutput
from ..model.geometry import pose_encoding_to_cameras
from ..model.heads.moe_head import MixtureOutput, fuse
from ..timing import StageTimer

BACKENDS = ("torch", "onnxruntime")
# Tried in this order when none are named; the first installed one that loads the model runs it.
DEFAULT_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
INSTALL_HINT = "pip install 'moe3d_ros[onnx]' (or: pip install onnx onnxruntime onnxscript; onnxruntime-gpu for CUDA and TensorRT)"


class BackendUnavailable(RuntimeError):
    """onnxruntime (or an asked-for execution provider) is not installed; the message says what to install."""


def import_onnxruntime():
    try:
        import onnxruntime
    except ImportError as exc:
        raise BackendUnavailable(f"backend onnxruntime needs the onnxruntime package, which is not installed: {INSTALL_HINT}") from exc
    return onnxruntime


def resolve_providers(requested: Sequence[str] = ()) -> list[str]:
    """The execution providers to ask for, in order: `requested` as given (each must be
    installed), or DEFAULT_PROVIDERS that are installed."""
    available = import_onnxruntime().get_available_providers()
    if not requested:
        return [name for name in DEFAULT_PROVIDERS if name in available]
    missing = [name for name in requested if name not in available]
    if missing:
        raise BackendUnavailable(f"onnx_providers {list(missing)} not installed (available: {available}); "
                                 "name installed ones, or leave onnx_providers empty for the default order")
    return list(requested)


def parse_provider_options(entries: Sequence[str]) -> dict[str, dict[str, str]]:
    """['Provider:key=value', ...] -> {provider: {key: value}} (a value may hold ':' and '='):
    how a ROS string array carries ONNX Runtime's per-provider options."""
    options: dict[str, dict[str, str]] = {}
    for entry in entries:
        provider, _, option = entry.partition(":")
        key, equals, value = option.partition("=")
        if not provider.endswith("ExecutionProvider") or not key or not equals:
            raise ValueError(f"onnx_provider_options entry {entry!r}: write 'Provider:key=value', e.g. "
                             "'TensorrtExecutionProvider:trt_fp16_enable=True'")
        options.setdefault(provider, {})[key.strip()] = value.strip()
    return options


class OnnxModel:
    """An exported model: one ONNX Runtime session per file its manifest lists (made on first use):
    one for every window size of a dynamic export, one per size of a fixed-shape one. Called like
    VGGT: images [S, 3, H, W] or [1, S, 3, H, W] in [0, 1] -> VGGTOutput on the CPU, batch 1.
    `provider_options`: {provider: {key: value}}, given to ONNX Runtime as is (e.g. TensorRT's
    optimisation profile on the frame axis, docs/deploy.md)."""

    def __init__(self, path: str | Path, providers: Sequence[str] = (), threads: int = 0,
                 provider_options: dict[str, dict[str, str]] | None = None) -> None:
        self.manifest, self.folder = read_manifest(path)
        self.path = Path(path)
        self.providers = resolve_providers(providers)
        provider_options = provider_options or {}
        unused = sorted(set(provider_options) - set(self.providers))
        if unused:
            raise BackendUnavailable(f"onnx_provider_options names {unused}, which will not run (providers: {self.providers}): "
                                     "add it to onnx_providers (and install it), or drop its options")
        self.provider_options = [provider_options.get(name, {}) for name in self.providers]
        self._threads = threads
        self._sessions: dict[str, object] = {}  # file name -> session
        self.fusion = self.manifest.model.moe.fusion  # the MoE experts are fused here, so it can change at run time
        self.provider = self._session(min(self.manifest.files)).get_providers()[0]  # loads one now: errors at start-up

    @property
    def config(self) -> VGGTConfig:
        return self.manifest.model

    @property
    def description(self) -> str:
        m = self.manifest
        counts = ",".join(str(count) for count in sorted(m.files))
        return f"onnxruntime {self.provider} {m.precision} ({m.width}x{m.height}, windows of {counts} frames)"

    def _session_options(self, serves_several_sizes: bool):
        options = import_onnxruntime().SessionOptions()
        # No busy-waiting between runs: the node's decoding, post-processing and ROS threads share the CPU.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if self._threads > 0:
            options.intra_op_num_threads = self._threads
        # ONNX Runtime's memory pattern plans and keeps one activation block per input shape in its
        # arena: a file serving window sizes 1-4 (tiny preset) held 919 MiB with it, 612 without, 442
        # for one fixed size (bench/bench_onnx_memory.py, reports/onnx_memory).
        options.enable_mem_pattern = not serves_several_sizes
        return options

    def _session(self, frames: int):
        """The session of the file that serves `frames` (one for every count a dynamic export serves)."""
        name = self.manifest.files[frames]
        if name not in self._sessions:
            ort = import_onnxruntime()
            options = self._session_options(sum(file == name for file in self.manifest.files.values()) > 1)
            self._sessions[name] = ort.InferenceSession(str(self.folder / name), options, providers=self.providers,
                                                        provider_options=self.provider_options)
        return self._sessions[name]

    def __call__(self, images: torch.Tensor, heads: Sequence[str] = ("camera", "depth"), timer: StageTimer | None = None,
                 patches: torch.Tensor | None = None) -> VGGTOutput:
        if patches is not None:
            raise ValueError("the onnxruntime backend encodes every frame itself (no encoder cache)")
        images = images[0] if images.ndim == 5 else images
        frames, hw = images.shape[0], (images.shape[-2], images.shape[-1])
        problem = self.manifest.unserved([frames], hw)
        if problem:
            raise ValueError(problem)
        timer = timer or StageTimer(torch.device("cpu"), enabled=False)
        with timer.stage("forward"):
            values = self._session(frames).run(None, {INPUT_NAME: images.detach().float().cpu().numpy()})
        out = dict(zip(self.manifest.outputs, (torch.from_numpy(np.ascontiguousarray(v)).unsqueeze(0) for v in values)))
        result = VGGTOutput(pose_enc=out["pose_enc"], pose_enc_list=[out["pose_enc"]], depth=out["depth"], depth_conf=out["depth_conf"])
        result.extrinsics, result.intrinsics = pose_encoding_to_cameras(out["pose_enc"], hw)
        if "gate_logits" in out:
            depth, conf = fuse(out["expert_depth"], out["expert_conf"], out["gate_logits"], self.fusion)
            result.mixture = MixtureOutput(out["expert_depth"], out["expert_conf"], out["gate_logits"], depth, conf)
            result.depth, result.depth_conf = depth, conf
        return result
