"""InferenceEngine: a window of camera images in, host-side predictions out. No ROS here.

The engine owns the device and precision choice, preprocessing and the model call, and times
each stage so callers (the node, the CLI, benchmarks) report where the time goes.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from typing import Hashable, Sequence

import numpy as np
import torch

from ..model import VGGT, VGGTOutput
from ..model.geometry import depth_to_world_points
from ..timing import StageTimer
from .cuda_graph import GraphedForward
from .encoder_cache import EncoderCache
from .onnx_backend import OnnxModel
from .preprocess import ImageTransform, Mode, preprocess_images

LOG = logging.getLogger(__name__)
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def is_out_of_memory(exc: BaseException) -> bool:
    """Host or device memory ran out (torch raises several kinds for it); `release()` then."""
    if isinstance(exc, (MemoryError, torch.OutOfMemoryError)):
        return True
    return isinstance(exc, RuntimeError) and ("out of memory" in str(exc) or "can't allocate memory" in str(exc))


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when present; an explicit CUDA device that is absent is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ValueError(f"device {name!r} is not a torch device (use auto, cpu, cuda or cuda:N)") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available (use auto or cpu)")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device {name!r} is not supported (use auto, cpu, cuda or cuda:N)")
    return device


def resolve_precision(name: str, device: torch.device) -> torch.dtype:
    """'auto': bf16 autocast on CUDA (fp16 where bf16 is missing), fp32 on the CPU."""
    if name == "auto":
        if device.type != "cuda":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if name not in PRECISIONS:
        raise ValueError(f"precision {name!r} unknown (use auto, {', '.join(PRECISIONS)})")
    return PRECISIONS[name]


@dataclass(frozen=True)
class EngineConfig:
    device: str = "auto"
    precision: str = "auto"
    mode: Mode = "crop"
    heads: tuple[str, ...] = ("camera", "depth")
    encoder_cache: int = 0  # frames whose encoder tokens are kept for later windows (0 = off)
    compile: bool = False  # torch.compile the forward (each window shape compiles once: warm_up)
    cuda_graph: bool = False  # capture the forward in a CUDA graph per window shape and replay it (CUDA only)
    device_preprocess: bool = True  # upload uint8 and resize on the model's device (else on the CPU)
    keep_on_device: bool = False  # also return the window on the device (Predictions.on_device) for device post-processing


@dataclass
class DeviceWindow:
    """A window's predictions still on the model's device, for post-processing there."""

    images: torch.Tensor  # [S, H, W, 3] uint8, the model's input
    depth: torch.Tensor  # [S, H, W] float32
    depth_conf: torch.Tensor  # [S, H, W] float32
    winner: torch.Tensor | None = None  # [S, H, W] uint8
    gate_entropy: torch.Tensor | None = None  # [S, H, W] float32
    expert_spread: torch.Tensor | None = None  # [S, H, W] float32


@dataclass
class Predictions:
    """Host-side results for one window; arrays are per frame in the model's pixel grid."""

    images: np.ndarray  # [S, H, W, 3] uint8, the model's input
    depth: np.ndarray  # [S, H, W] float32, up to scale
    depth_conf: np.ndarray  # [S, H, W] float32
    extrinsics: np.ndarray | None  # [S, 3, 4] camera-from-world, world = frame 0's camera
    intrinsics: np.ndarray | None  # [S, 3, 3] of the model's pixel grid
    transforms: list[ImageTransform]
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    # With an MoE depth head (None otherwise):
    winner: np.ndarray | None = None  # [S, H, W] uint8 index of the highest-weight expert
    gate_entropy: np.ndarray | None = None  # [S, H, W] float32, nats
    expert_spread: np.ndarray | None = None  # [S, H, W] float32, max / min expert depth - 1
    num_experts: int = 0
    on_device: DeviceWindow | None = None  # with EngineConfig.keep_on_device; valid until the next run

    def world_points(self) -> np.ndarray:
        """[S, H, W, 3] points in frame 0's camera frame, from depth and predicted cameras."""
        if self.extrinsics is None or self.intrinsics is None:
            raise ValueError("world points need the camera head's predictions")
        points = depth_to_world_points(
            torch.from_numpy(self.depth), torch.from_numpy(self.extrinsics), torch.from_numpy(self.intrinsics)
        )
        return points.numpy()


class InferenceEngine:
    """`model`: the torch VGGT, or an exported one run by ONNX Runtime (OnnxModel), which takes
    the same images and returns the same outputs; the torch-only speed options (compile, CUDA
    graphs, encoder cache) are then off, with a note."""

    def __init__(self, model: VGGT | OnnxModel, config: EngineConfig = EngineConfig()) -> None:
        missing = [h for h in config.heads if h not in model.config.heads]
        if "depth" not in config.heads or missing:
            raise ValueError(f"engine heads {config.heads} must include depth and be built by the model ({model.config.heads})")
        self.notes: list[str] = []  # speed options that could not be used here, one line each
        if isinstance(model, OnnxModel):
            config = self._torch_options_off(config, model)
        self.config = config
        self.device = resolve_device(config.device)
        self.dtype = resolve_precision(config.precision, self.device)
        self.model = model if isinstance(model, OnnxModel) else model.to(self.device).eval()
        self.target = model.config.img_size
        self.cache = EncoderCache(config.encoder_cache) if config.encoder_cache > 0 else None
        self._fast = self._fast_forward()
        if isinstance(model, VGGT):  # the cache encodes 1..S new frames at a time: compiled once per count (warm_up)
            self._encode = torch.compile(model.aggregator.encode, dynamic=False) if config.compile else model.aggregator.encode

    def _torch_options_off(self, config: EngineConfig, model: OnnxModel) -> EngineConfig:
        """ONNX Runtime takes host arrays and runs the exported fp32 graph on its provider."""
        asked = [name for name, on in (("compile", config.compile), ("cuda_graph", config.cuda_graph),
                                       ("encoder_cache", config.encoder_cache > 0)) if on]
        if asked:
            self._note(f"{', '.join(asked)}: torch backend only; the onnxruntime backend ({model.provider}) runs without")
        return dataclasses.replace(config, device="cpu", precision="fp32", compile=False, cuda_graph=False,
                                   encoder_cache=0, keep_on_device=False)

    def _fast_forward(self):
        """The compiled and/or graph-captured forward, or None for the plain (timed per stage) one."""
        forward = self._forward
        if self.config.compile:
            forward = torch.compile(forward, dynamic=False)
        if self.config.cuda_graph:
            if self.device.type == "cuda":
                return GraphedForward(forward, self._note)
            self._note(f"cuda_graph needs a CUDA device; running on {self.device} without CUDA graphs")
        return forward if self.config.compile else None

    def _note(self, line: str) -> None:
        LOG.warning(line)
        self.notes.append(line)

    def _forward(self, images: torch.Tensor, patches: torch.Tensor | None) -> VGGTOutput:
        """The forward without host synchronisation (no stage timer), as compiled or captured."""
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32, cache_enabled=False):
            return self.model(images, heads=self.config.heads, patches=patches)

    def forward(self, images: torch.Tensor, patches: torch.Tensor | None = None) -> VGGTOutput:
        """The model's forward on preprocessed images [S, 3, H, W] with this engine's precision and
        speed options (compiled, CUDA graph), untimed. Outputs of a CUDA graph are valid until the
        next call."""
        return (self._fast if self._fast is not None else self._forward)(images, patches)  # (a GraphedForward has a length)

    @property
    def backend(self) -> str:
        return "onnxruntime" if isinstance(self.model, OnnxModel) else "torch"

    @property
    def provider(self) -> str:
        """The ONNX Runtime execution provider in use ('' with the torch backend)."""
        return self.model.provider if isinstance(self.model, OnnxModel) else ""

    def set_fusion(self, mode: str) -> None:
        """How the MoE head's experts are fused (winner, surface or mean), with either backend."""
        (self.model if isinstance(self.model, OnnxModel) else self.model.depth_head).fusion = mode

    @property
    def description(self) -> str:
        if isinstance(self.model, OnnxModel):
            return self.model.description
        options = [name for name, on in (("compiled", self.config.compile),
                                          ("CUDA graphs", isinstance(self._fast, GraphedForward))) if on]
        return f"{self.device} {str(self.dtype).removeprefix('torch.')}" + (f" ({', '.join(options)})" if options else "")

    def release(self) -> None:
        """Free what the engine holds on the device (encoder tokens, captured graphs), e.g. after an
        out-of-memory error; both are rebuilt on demand."""
        if self.cache is not None:
            self.cache.clear()
        if isinstance(self._fast, GraphedForward):
            self._fast.clear()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    @torch.inference_mode()
    def run(self, images: Sequence[np.ndarray], keys: Sequence[Hashable] | None = None) -> Predictions:
        """images: RGB uint8 HxWx3 (or grey HxW) arrays, one per frame, frame 0 the reference.
        `keys` name the frames (camera and stamp) for the encoder cache; without them (or with the
        cache off) every frame is encoded."""
        timer = StageTimer(self.device)
        with timer.stage("preprocess"):
            where = self.device if self.config.device_preprocess else torch.device("cpu")
            batch, transforms = preprocess_images(images, self.config.mode, self.target, where)
            batch = batch.to(self.device)
        autocast = torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32)
        patches = None
        if self.cache is not None and keys is not None:
            with timer.stage("encoder"), autocast:
                patches = self.cache.patches(self._encode, batch, keys, transforms)
        if self._fast is not None:
            with timer.stage("forward"):
                out = self.forward(batch, patches)
        else:
            with autocast:
                out = self.model(batch, heads=self.config.heads, timer=timer, patches=patches)
        with timer.stage("to_host"):
            predictions = self._to_host(batch, out, transforms)
        predictions.timings = dict(timer.seconds)
        return predictions

    def _to_host(self, batch: torch.Tensor, out: VGGTOutput, transforms: list[ImageTransform]) -> Predictions:
        window = DeviceWindow(
            images=(batch * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous(),
            depth=out.depth[0].float(), depth_conf=out.depth_conf[0].float(),
        )
        if out.mixture is not None:
            window.winner = out.mixture.winner[0].to(torch.uint8)
            window.gate_entropy = out.mixture.entropy[0].float()
            experts = out.mixture.expert_depth[0].float()  # [S, K, H, W]
            window.expert_spread = experts.amax(dim=1) / experts.amin(dim=1) - 1
        if self.config.keep_on_device:  # graph outputs are overwritten by the next replay: keep copies
            window.depth, window.depth_conf = window.depth.clone(), window.depth_conf.clone()
        predictions = Predictions(
            images=window.images.cpu().numpy(),
            depth=window.depth.cpu().numpy(),
            depth_conf=window.depth_conf.cpu().numpy(),
            extrinsics=None if out.extrinsics is None else out.extrinsics[0].float().cpu().numpy(),
            intrinsics=None if out.intrinsics is None else out.intrinsics[0].float().cpu().numpy(),
            transforms=transforms,
            on_device=window if self.config.keep_on_device else None,
        )
        if window.winner is not None:
            predictions.winner = window.winner.cpu().numpy()
            predictions.gate_entropy = window.gate_entropy.cpu().numpy()
            predictions.expert_spread = window.expert_spread.cpu().numpy()
            predictions.num_experts = out.mixture.gate_logits.shape[2]
        return predictions

    def warm_up(self, frame_counts: Sequence[int] = (1,), hw: tuple[int, int] = (480, 640)) -> float:
        """Run each window size once on blank images (compilation, graph capture, kernel selection,
        allocator growth), through the encoder cache as windows will; returns seconds."""
        start = time.perf_counter()
        for count in frame_counts:
            blank = [np.zeros((*hw, 3), np.uint8)] * count
            self.run(blank, keys=[("warm-up", count, i) for i in range(count)])
        if self.cache is not None:
            self.cache.clear()
        return time.perf_counter() - start
