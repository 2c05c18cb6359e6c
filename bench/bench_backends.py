#!/usr/bin/env python3
"""PyTorch against ONNX Runtime: forward and image-in-to-cloud-out time per window, and parity.

For each model (the bundled demo MoE model, and the `tiny` VGGT preset with a random MoE head at
VGGT's 518 px input) the script exports the forward with moe3d-export's code for 4-frame windows
of 640x480 images, then times each backend in turn (as a node runs one), in one process with the
same thread count for both:
- forward: the model call on the preprocessed window (torch: VGGT under inference_mode;
  onnxruntime: the session, inputs and outputs on the host);
- image to cloud: InferenceEngine.run on the 8-bit images (preprocess, forward, to host) plus the
  node's host post-processing (filter and crop per frame, the fused cloud's records);
and reports medians, the torch/onnxruntime ratio and the largest relative depth difference.

    python bench/bench_backends.py [--repeats 10] [--threads 2] [--providers CPUExecutionProvider]
        [--device cpu] [--precision fp32] [--models demo,tiny]
On a GPU machine with onnxruntime-gpu: --device cuda --precision bf16 --providers
CUDAExecutionProvider (or TensorrtExecutionProvider) compares with torch bf16.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

TARGET_CPU_SPEEDUP = 1.3
FRAMES = 4
IMAGE_HW = (480, 640)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch and for onnxruntime")
    parser.add_argument("--providers", default="CPUExecutionProvider", help="onnxruntime providers, comma-separated")
    parser.add_argument("--device", default="cpu", help="torch device")
    parser.add_argument("--precision", default="fp32", help="torch precision (onnxruntime runs the fp32 export)")
    parser.add_argument("--models", default="demo,tiny")
    return parser.parse_args(argv)


def build(name: str):
    from moe3d_ros.io.checkpoint import DEMO_MODEL_DIR, load_model
    from moe3d_ros.model import VGGT, MoEConfig, preset

    if name == "demo":
        return load_model(DEMO_MODEL_DIR)[0], "bundled demo model (MoE head)"
    torch.manual_seed(0)
    model = VGGT(preset("tiny").with_moe(MoEConfig(num_experts=4))).eval()
    torch.nn.init.normal_(model.depth_head.gate.conv2.weight, std=0.5)
    with torch.no_grad():
        model.camera_head.pose_branch.fc2.bias[7:9] += 0.3  # a finite focal length
    return model, "tiny VGGT preset, random MoE head"


def image_to_cloud(engine, images) -> tuple[float, np.ndarray]:
    from moe3d_ros.outputs.filtering import FilterConfig
    from moe3d_ros.outputs.postprocess import camera_product, fused_cloud

    start = time.perf_counter()
    pred = engine.run(images)
    products = [camera_product(pred, i, FilterConfig(), 1.0) for i in range(len(images))]
    fused_cloud(pred, products, organized=True)
    return time.perf_counter() - start, pred.depth


def bench_model(name: str, args: argparse.Namespace, folder: Path) -> dict:
    from moe3d_ros.inference.engine import EngineConfig, InferenceEngine
    from moe3d_ros.inference.onnx_backend import OnnxModel
    from moe3d_ros.inference.preprocess import plan_transform
    from moe3d_ros.io.onnx_export import export_onnx

    model, description = build(name)
    height, width = plan_transform(IMAGE_HW, "crop", model.config.img_size).model_hw
    start = time.perf_counter()
    export_onnx(model, [FRAMES], width, height, folder / f"{name}.onnx", description)
    export_s = time.perf_counter() - start
    providers = [p for p in args.providers.split(",") if p]
    engines = {
        "torch": InferenceEngine(model, EngineConfig(device=args.device, precision=args.precision)),
        "onnxruntime": InferenceEngine(OnnxModel(folder / f"{name}.onnx", providers, threads=args.threads), EngineConfig()),
    }
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (*IMAGE_HW, 3), dtype=np.uint8) for _ in range(FRAMES)]
    batch = torch.rand(FRAMES, 3, height, width, generator=torch.Generator().manual_seed(0))
    times: dict[str, dict[str, list[float]]] = {b: {"forward": [], "image_to_cloud": []} for b in engines}
    depth: dict[str, np.ndarray] = {}
    for backend, engine in engines.items():  # one backend at a time, as a node runs one
        image_to_cloud(engine, images)  # warm-up: first calls allocate and pick kernels
        on_device = batch.to(engine.device)
        for _ in range(args.repeats):
            with torch.inference_mode():
                start = time.perf_counter()
                engine.forward(on_device)
                if engine.device.type == "cuda":
                    torch.cuda.synchronize()
                times[backend]["forward"].append(time.perf_counter() - start)
        for _ in range(args.repeats):
            seconds, depth[backend] = image_to_cloud(engine, images)
            times[backend]["image_to_cloud"].append(seconds)
    medians = {b: {k: statistics.median(v) for k, v in t.items()} for b, t in times.items()}
    difference = float(np.abs(depth["onnxruntime"] - depth["torch"]).max() / np.abs(depth["torch"]).max())
    return {"name": name, "description": description, "input": f"{width}x{height}", "export_s": export_s,
            "medians": medians, "depth_difference": difference, "torch": engines["torch"].description,
            "onnxruntime": engines["onnxruntime"].description}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        results = [bench_model(name, args, Path(tmp)) for name in args.models.split(",")]
    print(f"{FRAMES}-frame windows of {IMAGE_HW[1]}x{IMAGE_HW[0]} images, median of {args.repeats}, {args.threads} threads; "
          f"torch {torch.__version__}\n")
    print("| model | input | torch | onnxruntime | forward torch | forward onnxruntime | speed-up | image to cloud torch "
          "| image to cloud onnxruntime | speed-up | depth max rel. diff. |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        t, o = r["medians"]["torch"], r["medians"]["onnxruntime"]
        print(f"| {r['description']} | {r['input']} | {r['torch']} | {r['onnxruntime']} | {t['forward'] * 1e3:.0f} ms "
              f"| {o['forward'] * 1e3:.0f} ms | {t['forward'] / o['forward']:.2f}x | {t['image_to_cloud'] * 1e3:.0f} ms "
              f"| {o['image_to_cloud'] * 1e3:.0f} ms | {t['image_to_cloud'] / o['image_to_cloud']:.2f}x | {r['depth_difference']:.1e} |")
    if args.device == "cpu":
        for r in results:
            ratio = r["medians"]["torch"]["forward"] / r["medians"]["onnxruntime"]["forward"]
            verdict = "reached" if ratio >= TARGET_CPU_SPEEDUP else "NOT reached"
            print(f"{r['name']}: onnxruntime forward {ratio:.2f}x torch on the CPU (target >= {TARGET_CPU_SPEEDUP}x: {verdict}); "
                  f"export took {r['export_s']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
