"""moe3d-infer: run the model once on a folder of images or a generated sequence.

Prints depth statistics, camera poses and per-stage timings; writes colourised depth PNGs,
the model's input images, a PLY of the fused cloud and the raw arrays (predictions.npz).
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from ..inference.engine import EngineConfig, InferenceEngine, Predictions
from ..inference.onnx_backend import BackendUnavailable, OnnxModel
from ..io.checkpoint import CheckpointError, load_for_inference
from ..io.export import colorize_depth, write_ply, write_png
from ..inference.onnx_manifest import ExportError
from ..model import PRESETS, VGGT, preset
from .backend import add_backend_arguments, check_backend_arguments, onnx_model_from

LOG = logging.getLogger("moe3d-infer")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="moe3d-infer", description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", type=Path, help="folder of images (sorted by name; the first is the reference)")
    source.add_argument("--synthetic", type=int, metavar="SEED", help="generate a synthetic scene with this seed")
    parser.add_argument("--frames", type=int, default=4, help="frames to use (default 4)")
    weights = parser.add_mutually_exclusive_group()
    weights.add_argument("--checkpoint", default="",
                         help="our checkpoint folder, a VGGT .pt/.safetensors file, or org/name on Hugging Face "
                              "(default: the bundled synthetic demo model)")
    weights.add_argument("--random-init", choices=sorted(PRESETS), help="random weights (pipeline check only: output is meaningless)")
    parser.add_argument("--preset", default="vggt_1b", choices=sorted(PRESETS), help="architecture of a published VGGT file")
    parser.add_argument("--moe-head", help="a fine-tuned depth-head folder (moe3d-train output) loaded on top of --checkpoint")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--precision", default="auto", help="auto, fp32, bf16 or fp16")
    parser.add_argument("--mode", default="crop", choices=("crop", "pad"), help="preprocessing mode")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch's default)")
    parser.add_argument("--out", type=Path, default=Path("out/infer"), help="output folder")
    add_backend_arguments(parser)
    args = parser.parse_args(argv)
    if args.frames < 1:
        parser.error("--frames must be at least 1")
    check_backend_arguments(parser, args)
    return args


def load_images(folder: Path, limit: int) -> list[np.ndarray]:
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:limit]
    if not files:
        raise FileNotFoundError(f"{folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    images = []
    for path in files:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"{path} could not be decoded as an image")
        images.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    return images


def build_model(args: argparse.Namespace) -> tuple[VGGT | OnnxModel, str]:
    if args.backend == "onnxruntime":
        model = onnx_model_from(args)
        return model, f"{args.onnx_model} ({model.manifest.description})"
    if args.random_init:
        LOG.warning("RANDOM WEIGHTS (%s preset): this checks the pipeline; depth and poses are meaningless", args.random_init)
        return VGGT(preset(args.random_init)).eval(), f"{args.random_init} preset, random weights"
    return load_for_inference(args.checkpoint, args.preset, args.moe_head or "", LOG.warning)


def report(pred: Predictions) -> None:
    print(f"{'frame':>5} {'depth min':>10} {'median':>10} {'max':>10} {'conf med':>9}   camera centre (frame-0 camera)   angle to frame 0")
    for i, depth in enumerate(pred.depth):
        centre, angle = "", ""
        if pred.extrinsics is not None:
            rotation, translation = pred.extrinsics[i, :, :3], pred.extrinsics[i, :, 3]
            c = -rotation.T @ translation
            centre = f"({c[0]:+.3f}, {c[1]:+.3f}, {c[2]:+.3f})"
            angle = f"{np.degrees(np.arccos(np.clip((np.trace(rotation) - 1) / 2, -1, 1))):.1f} deg"
        print(
            f"{i:>5} {depth.min():>10.4f} {np.median(depth):>10.4f} {depth.max():>10.4f} "
            f"{np.median(pred.depth_conf[i]):>9.3f}   {centre:<30}   {angle}"
        )
    print("depth is relative (up to scale): VGGT normalises scenes by mean point distance")


def write_outputs(pred: Predictions, out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    lo, hi = float(np.percentile(pred.depth, 2)), float(np.percentile(pred.depth, 98))
    for i in range(len(pred.depth)):
        write_png(out / f"image_{i:03d}.png", pred.images[i])
        write_png(out / f"depth_{i:03d}.png", colorize_depth(pred.depth[i], lo, hi))
    count = 0
    if pred.extrinsics is not None:
        count = write_ply(out / "cloud.ply", pred.world_points().reshape(-1, 3), pred.images.reshape(-1, 3))
    arrays = {"depth": pred.depth, "depth_conf": pred.depth_conf, "images": pred.images}
    if pred.extrinsics is not None:
        arrays.update(extrinsics=pred.extrinsics, intrinsics=pred.intrinsics)
    np.savez_compressed(out / "predictions.npz", **arrays)
    return count


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="[%(name)s] %(levelname)s: %(message)s")
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    try:
        start = time.perf_counter()
        if args.images is not None:
            images = load_images(args.images, args.frames)
            source = f"{len(images)} images from {args.images}"
        else:
            from ..data.synthetic import generate_sequence

            images = list(generate_sequence(args.synthetic, args.frames).images)
            source = f"{len(images)} frames of synthetic scene {args.synthetic}"
        load_input = time.perf_counter() - start
        start = time.perf_counter()
        model, description = build_model(args)
        engine = InferenceEngine(model, EngineConfig(device=args.device, precision=args.precision, mode=args.mode))
        load_model = time.perf_counter() - start
        print(f"model: {description}")
        print(f"device: {engine.description}; input: {source}, {images[0].shape[1]}x{images[0].shape[0]}")
        pred = engine.run(images)
    except (CheckpointError, ExportError, BackendUnavailable, FileNotFoundError, ValueError) as exc:
        LOG.error("%s", exc)
        return 2
    print(f"model input: {len(pred.depth)} x {pred.depth.shape[2]}x{pred.depth.shape[1]} ({args.mode} mode)")
    report(pred)
    start = time.perf_counter()
    count = write_outputs(pred, args.out)
    timings = {"read input": load_input, "load model": load_model, **pred.timings, "write outputs": time.perf_counter() - start}
    print("timings: " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in timings.items()))
    print(f"wrote {len(pred.depth)} depth PNGs, {count} points to {args.out / 'cloud.ply'}, arrays to {args.out / 'predictions.npz'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
