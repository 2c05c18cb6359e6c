"""ONNX export of the whole forward (aggregator, camera head, DPT or MoE depth head).

Exporter: torch.onnx's dynamo exporter (torch.export graph -> ONNX opset 18), the path PyTorch
maintains; opset 18 runs on ONNX Runtime >= 1.14 and TensorRT >= 8.6. By default one file serves
every requested frame count: its frame axis is dynamic (1 to the largest count), so one ONNX
Runtime session with one copy of the weights serves every window the node forms. `dynamic=False`
writes one fixed-shape file per frame count (as earlier exports did). A manifest JSON beside the
files says which frame counts and which input size they serve (frame count -> file), which model
config they hold, and what the node needs to use them. `precision="fp16"` stores the weights and
runs the forward in fp16 (half the weight memory), with fp32 inputs and outputs, so the node's
pre- and post-processing are the same for both.
"""
from __future__ import annotations

import copy
import json
import logging
import warnings
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor, nn

from ..inference.engine import PRECISIONS
from ..inference.onnx_manifest import (
    DPT_OUTPUTS,
    INPUT_NAME,
    MOE_OUTPUTS,
    OPSET,
    ExportError,
    OnnxManifest,
    manifest_path,
)
from ..model import VGGT

LOG = logging.getLogger(__name__)
EXTERNAL_DATA_BYTES = 1 << 30  # larger models keep their weights in a .data file (protobuf's 2 GB limit)


EXPORT_PRECISIONS = ("fp32", "fp16")  # bf16: ONNX Runtime has few bf16 kernels


class ExportedForward(nn.Module):
    """VGGT's forward for one window, returning plain tensors in the manifest's output order: fp32
    images in, fp32 outputs out, whatever precision the model runs in between."""

    def __init__(self, model: VGGT) -> None:
        super().__init__()
        self.model = model
        self.dtype = next(model.parameters()).dtype

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        out = self.model(images.to(self.dtype), heads=("camera", "depth"))
        outputs = (out.depth[0], out.depth_conf[0], out.pose_enc[0])
        if out.mixture is not None:
            outputs += (out.mixture.gate_logits[0], out.mixture.expert_depth[0], out.mixture.expert_conf[0])
        return tuple(output.float() for output in outputs)


def cast_for_export(model: VGGT, precision: str) -> VGGT:
    """The model in the export's precision: itself for fp32, an fp16 copy for fp16 (weights and
    activations; the depth and confidence exp() and the outputs stay fp32)."""
    if precision not in EXPORT_PRECISIONS:
        raise ExportError(f"--precision {precision}: choose from {', '.join(EXPORT_PRECISIONS)}")
    return model if precision == "fp32" else copy.deepcopy(model).to(PRECISIONS[precision])


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


def onnx_file_names(out: Path, frame_counts: Sequence[int], dynamic: bool = True) -> dict[int, str]:
    """`out`'s own name for every frame count of a dynamic export or a single count;
    `<stem>.f<N>.onnx` for each of several fixed-shape ones."""
    if dynamic or len(frame_counts) == 1:
        return {count: out.name for count in frame_counts}
    return {count: f"{out.stem}.f{count}.onnx" for count in frame_counts}


def export_onnx(model: VGGT, frame_counts: Sequence[int], width: int, height: int, out: str | Path, description: str = "",
                dynamic: bool = True, precision: str = "fp32") -> OnnxManifest:
    """Write the ONNX file(s) and the manifest beside them; returns the manifest. `dynamic`: one
    file whose frame axis serves 1 .. max(frame_counts) frames; `precision`: fp32 or fp16 (inputs
    and outputs fp32 either way)."""
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
    wrapper = ExportedForward(cast_for_export(model.eval(), precision))
    files = onnx_file_names(out, frame_counts, dynamic)
    output_names = list(DPT_OUTPUTS + (MOE_OUTPUTS if config.depth_head == "moe" else ()))
    external = sum(t.numel() * t.element_size() for t in wrapper.model.state_dict().values()) > EXTERNAL_DATA_BYTES
    for name in ("onnx_ir", "onnxscript", "torch.onnx"):  # every folded constant at INFO; skipped torchvision ops
        logging.getLogger(name).setLevel(logging.ERROR)
    largest = max(frame_counts)
    if dynamic and largest > config.dpt.frames_chunk_size:
        raise ExportError(f"a dynamic frame axis serves at most dpt.frames_chunk_size = {config.dpt.frames_chunk_size} frames "
                          f"(the head runs larger windows in chunks): export --frames 1-{config.dpt.frames_chunk_size} or fixed sizes")
    for name in sorted(set(files.values())):
        counts = [count for count, file in files.items() if file == name]
        # A dynamic axis is traced at a count above 2: sizes 1 and 2 are ones the tracer may mistake for constants.
        traced = max(largest, 3) if dynamic else counts[0]
        example = torch.rand(traced, 3, height, width)
        shapes = {"images": {0: torch.export.Dim("frames", min=1, max=traced)}} if dynamic else None
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the exporter's notes on ops it skips (torchvision)
            torch.onnx.export(wrapper, (example,), str(out.parent / name), dynamo=True, opset_version=OPSET,
                              input_names=[INPUT_NAME], output_names=output_names, external_data=external, verbose=False,
                              dynamic_shapes=shapes)
        LOG.info("wrote %s (%s frames, %dx%d)", out.parent / name, ",".join(map(str, counts)), width, height)
    manifest = OnnxManifest(model=config.with_heads(("camera", "depth")), width=width, height=height, files=files, description=description,
                            precision=precision)
    manifest_path(out).write_text(json.dumps(manifest.to_json(), indent=2) + "\n")
    return manifest
