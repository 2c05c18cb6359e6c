"""What an ONNX export serves, written beside its files as `<stem>.json` by moe3d-export
(io.onnx_export) and read by the onnxruntime backend: the model config, the frame counts and
input size, the outputs, and what to export when a window is not served."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from .. import __version__
from ..model import VGGTConfig

MANIFEST_FORMAT = "moe3d_ros.onnx"
MANIFEST_VERSION = 1
OPSET = 18
INPUT_NAME = "images"  # [S, 3, H, W] float32 RGB in [0, 1], frame 0 the reference
DPT_OUTPUTS = ("depth", "depth_conf", "pose_enc")  # [S, H, W], [S, H, W], [S, 9]
MOE_OUTPUTS = ("gate_logits", "expert_depth", "expert_conf")  # [S, K, H, W] each


class ExportError(RuntimeError):
    """The model or the request cannot be exported; the message says why and what to do."""


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
