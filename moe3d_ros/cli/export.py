"""moe3d-export: write the whole forward (aggregator, camera head, DPT or MoE depth head) as ONNX.

    moe3d-export --frames 1-4 --image-size 224 168 --out model.onnx            # bundled demo model
    moe3d-export --frames 1-4 --image-size 224 168 --precision fp16 --out model_fp16.onnx
    moe3d-export --checkpoint model.safetensors --moe-head runs/moe/model --frames 1-4 \\
                 --image-size 518 392 --out vggt_moe.onnx

One ONNX file whose frame axis serves every count asked for (--fixed: one fixed-shape file per
count, model.f<N>.onnx) and model.json beside it: what the file serves, for the node's and the
CLIs' onnxruntime backend. --precision fp16 halves the weights (inputs and outputs stay fp32).
--image-size is the model's input (width, height): what the preprocessing makes of your camera
images (e.g. 518 x 392 for 640x480 with vggt_1b, 224 x 168 with the demo model).
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from ..io.checkpoint import CheckpointError, load_for_inference
from ..inference.onnx_manifest import ExportError
from ..io.onnx_export import export_onnx, parse_frame_counts
from ..model import PRESETS

LOG = logging.getLogger("moe3d-export")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="moe3d-export", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="",
                        help="our checkpoint folder or a VGGT .pt/.safetensors file (default: the bundled demo model)")
    parser.add_argument("--preset", default="vggt_1b", help=f"architecture of a published VGGT file ({', '.join(sorted(PRESETS))})")
    parser.add_argument("--moe-head", help="a depth-head folder (moe3d-train output) loaded on top of --checkpoint")
    parser.add_argument("--frames", default="4", help="frames per window: a count (4), a range (1-4) or a list (2,4)")
    parser.add_argument("--image-size", type=int, nargs=2, metavar=("W", "H"), required=True, help="the model's input size")
    parser.add_argument("--out", type=Path, required=True, help="the .onnx file to write (its .json lands beside it)")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "fp16"),
                        help="weights and activations (inputs and outputs stay fp32): fp16 halves the weight memory")
    parser.add_argument("--fixed", action="store_true",
                        help="one fixed-shape file per frame count (default: one file whose frame axis serves every count)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="[%(name)s] %(levelname)s: %(message)s")
    args = parse_args(argv)
    start = time.perf_counter()
    try:
        counts = parse_frame_counts(args.frames)
        model, description = load_for_inference(args.checkpoint, args.preset, args.moe_head or "", LOG.warning)
        width, height = args.image_size
        manifest = export_onnx(model, counts, width, height, args.out, description, dynamic=not args.fixed,
                               precision=args.precision)
    except (CheckpointError, ExportError, FileNotFoundError, ValueError, KeyError) as exc:
        LOG.error("%s", " ".join(str(exc).split()))
        return 1
    files = ", ".join(sorted(set(manifest.files.values())))
    print(f"exported {description}: {manifest.model.depth_head} depth head, outputs {', '.join(manifest.outputs)}")
    print(f"wrote {files} and {args.out.with_suffix('.json').name} to {args.out.parent} in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
