"""ONNX export of the whole forward (aggregator, camera head, DPT or MoE depth head).

Exporter: torch.onnx's dynamo exporter (torch.export graph -> ONNX opset 18), the path PyTorch
maintains; opset 18 runs on ONNX Runtime >= 1.14 and TensorRT >= 8.6. Shapes are fixed: the
export specialises the frame count (the aggregator branches on it), so every window size gets its
own file, and a manifest JSON beside the files says which frame counts and which input size they
serve, which model config they hold, and what the node needs to use them. fp32 only: TensorRT
builds its fp16 engine from this file (README, "Deploying with ONNX Runtime and TensorRT").
"""
from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from .. import __version__
from ..model import VGGT, VGGTConfig

LOG = logging.getLogger(__name__)
MANIFEST_FORMAT = "moe3d_ros.onnx"
MANIFEST_VERSION = 1
OPSET = 18
INPUT_NAME = "images"  # [S, 3, H, W] float32 RGB in [0, 1], frame 0 the reference
DPT_OUTPUTS = ("depth", "depth_conf", "pose_enc")  # [S, H, W], [S, H, W], [S, 9]
MOE_OUTPUTS = ("gate_logits", "expert_depth", "expert_conf")  # [S, K, H, W] each
EXTERNAL_DATA_BYTES = 1 << 30  # larger models keep their weights in a .data file (protobuf's 2 GB limit)


class ExportError(RuntimeError):
    """The model or the request cannot be exported; the message says why and what to do."""


class ExportedForward(nn.Module):
    """VGGT's forward for one window, returning plain tensors in the manifest's output order."""

    def __init__(self, model: VGGT) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        out = self.model(images, heads=("camera", "depth"))
        outputs = (out.depth[0], out.depth_conf[0], out.pose_enc[0])
        if out.mixture is not None:
            outputs += (out.mixture.gate_logits[0], out.mixture.expert_depth[0], out.mixture.expert_conf[0])
        return outputs


@dataclass(frozen=True)
class OnnxManifest:
    """What the exported files serve: written as `<stem>.json` beside them."""

    model: VGGTConfig
    width: int
    height: int
    files: dict[int, str]  # frame count -> ONNX file name beside the manifest
    description: str = ""  # where the weights came from
    precision: str = "fp32"
    opset: int = OPSET
    package_version: str = __version__

    @property
    def outputs(self) -> tuple[str, ...]:
        return DPT_OUTPUTS + (MOE_OUTPUTS if self.model.depth_head == "moe" else ())

    def to_json(self) -> dict[str, Any]:
        return {
            "format": MANIFEST_FORMAT, "format_version": MANIFEST_VERSION,
            "exporter": f"torch.onnx (dynamo), torch {torch.__version__}", "opset": self.opset,
            "package_version": self.package_version, "description": self.description,
            "preset_config": self.model.to_dict(), "heads": ["camera", "depth"],
            "depth_head": self.model.depth_head,
            "num_experts": self.model.moe.num_experts if self.model.depth_head == "moe" else 0,
            "precision": self.precision, "image_size": [self.width, self.height],
            "frames": {str(count): name for count, name in sorted(self.files.items())},
            "input": INPUT_NAME, "outputs": list(self.outputs),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str) -> "OnnxManifest":
        if data.get("format") != MANIFEST_FORMAT or data.get("format_version") != MANIFEST_VERSION:
            raise ExportError(f"{where} is not a moe3d-export manifest (format {MANIFEST_FORMAT} v{MANIFEST_VERSION}): re-export with moe3d-export")
        try:
            width, height = (int(v) for v in data["image_size"])
            return cls(
                model=VGGTConfig.from_dict(data["preset_config"]), width=width, height=height,
                files={int(count): str(name) for count, name in data["frames"].items()},
                description=str(data.get("description", "")), precision=str(data["precision"]),
                opset=int(data["opset"]), package_version=str(data["package_version"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ExportError(f"{where}: damaged manifest ({exc}); re-export with moe3d-export") from exc

    def unserved(self, frame_counts: Sequence[int], hw: tuple[int, int] | None = None) -> str | None:
        """None when windows of each of `frame_counts` frames at `hw` (model input height, width)
        are served, else one line that says what to export."""
        missing = sorted(set(frame_counts) - set(self.files))
        if not missing and (hw is None or tuple(hw) == (self.height, self.width)):
            return None
        counts = sorted(set(self.files) | set(frame_counts))
        frames_arg = f"{counts[0]}-{counts[-1]}" if counts == list(range(counts[0], counts[-1] + 1)) else ",".join(map(str, counts))
        width, height = (self.width, self.height) if hw is None else (hw[1], hw[0])
        served = ",".join(str(count) for count in sorted(self.files))
        asked = ",".join(map(str, missing or sorted(frame_counts)))
        return (f"the ONNX model serves windows of {served} frame(s) at {self.width}x{self.height}, not {asked} at "
                f"{width}x{height}: export it with moe3d-export --frames {frames_arg} --image-size {width} {height}")


def parse_frame_counts(text: str) -> list[int]:
    """'4' -> [4]; '1-4' -> [1, 2, 3, 4]; '2,4' -> [2, 4]."""
    counts: set[int] = set()
    try:
        for part in text.split(","):
            lo, _, hi = part.strip().partition("-")
            counts.update(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise ValueError(f"frames {text!r}: use a count (4), a range (1-4) or a list (2,4)") from None
    if not counts or min(counts) < 1:
        raise ValueError(f"frames {text!r}: counts must be >= 1")
    return sorted(counts)


def manifest_path(path: str | Path) -> Path:
    """The manifest of an exported model: `path` itself when it is the JSON, else `<stem>.json`."""
    path = Path(path)
    return path if path.suffix == ".json" else path.with_suffix(".json")


def read_manifest(path: str | Path) -> tuple[OnnxManifest, Path]:
    """The manifest for `path` (the .onnx file or its .json) and the folder its files are in."""
    json_path = manifest_path(path)
    if not json_path.is_file():
        raise ExportError(f"{json_path} not found: onnx_model must be a file written by moe3d-export (its .onnx or its .json)")
    try:
        data = json.loads(json_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ExportError(f"{json_path}: not readable JSON ({exc}); re-export with moe3d-export") from exc
    manifest = OnnxManifest.from_json(data, str(json_path))
    missing = [name for name in manifest.files.values() if not (json_path.parent / name).is_file()]
    if missing:
        raise ExportError(f"{json_path} lists {missing}, missing beside it: copy them along or re-export")
    return manifest, json_path.parent


def onnx_file_names(out: Path, frame_counts: Sequence[int]) -> dict[int, str]:
    """`out`'s own name for a single frame count; `<stem>.f<N>.onnx` for each of several."""
    if len(frame_counts) == 1:
        return {frame_counts[0]: out.name}
    return {count: f"{out.stem}.f{count}.onnx" for count in frame_counts}


def export_onnx(model: VGGT, frame_counts: Sequence[int], width: int, height: int, out: str | Path, description: str = "") -> OnnxManifest:
    """Write one ONNX file per frame count and the manifest beside them; returns the manifest."""
    out = Path(out)
    config = model.config
    missing = [head for head in ("camera", "depth") if head not in config.heads]
    if missing:
        raise ExportError(f"the model has no {' and no '.join(missing)} head: the exported forward needs the camera and depth heads")
    p = config.patch_size
    if width % p or height % p or width < p or height < p:
        raise ExportError(f"image size {width}x{height}: width and height must be positive multiples of the patch size {p}")
    if out.suffix != ".onnx":
        raise ExportError(f"--out {out}: the file name must end in .onnx")
    out.parent.mkdir(parents=True, exist_ok=True)
    wrapper = ExportedForward(model.eval())
    files = onnx_file_names(out, frame_counts)
    output_names = list(DPT_OUTPUTS + (MOE_OUTPUTS if config.depth_head == "moe" else ()))
    external = sum(t.numel() * t.element_size() for t in model.state_dict().values()) > EXTERNAL_DATA_BYTES
    for name in ("onnx_ir", "onnxscript", "torch.onnx"):  # every folded constant at INFO; skipped torchvision ops
        logging.getLogger(name).setLevel(logging.ERROR)
    for count, name in files.items():
        example = torch.rand(count, 3, height, width)
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the exporter's notes on ops it skips (torchvision)
            torch.onnx.export(wrapper, (example,), str(out.parent / name), dynamo=True, opset_version=OPSET,
                              input_names=[INPUT_NAME], output_names=output_names, external_data=external, verbose=False)
        LOG.info("wrote %s (%d frames, %dx%d)", out.parent / name, count, width, height)
    manifest = OnnxManifest(model=config.with_heads(("camera", "depth")), width=width, height=height, files=files, description=description)
    manifest_path(out).write_text(json.dumps(manifest.to_json(), indent=2) + "\n")
    return manifest
