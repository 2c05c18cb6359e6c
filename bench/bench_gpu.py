#!/usr/bin/env python3
"""Forward and node-path speed on one device, with every speed option on and off; JSON + markdown.

- forward, ours: VGGT with the DPT head and with the MoE head (random weights), camera + depth,
  for each window size in --frames; with --reference-repo also the reference implementation on the
  same weights with the same heads (camera + depth);
- the node's whole path from 640x480 uint8 images: InferenceEngine.run, then camera_product for
  each published frame and fused_cloud (the buffers the messages are built from), per stage, for
  1 camera, 4 cameras, and 1 camera with window_size 4 (3 of its 4 frames seen before);
- speed options: the encoder cache (sliding windows where 3 of 4 frames were seen before), and
  torch.compile of the model with --compile (slow to compile on a CPU);
- peak device memory on CUDA.
Times are medians of --repeats runs after one warm-up, with CUDA events on a GPU.

    python bench/bench_gpu.py [--preset vggt_1b] [--frames 1,4,8,16] [--reference-repo PATH] [--compile]
    python bench/bench_gpu.py --preset tiny --frames 1,2 --repeats 1 --device cpu   # seconds, for CI
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402


def timed(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    """Median seconds of `fn` after one warm-up run."""
    fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end) / 1000)
        else:
            start_s = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start_s)
    return statistics.median(times)


def peak_memory(fn: Callable[[], object], device: torch.device) -> float | None:
    """Peak device memory of one run above what was allocated before it [GiB] (CUDA only)."""
    if device.type != "cuda":
        return None
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**30


def reference_forward(repo: Path, ours: torch.nn.Module, preset_name: str):
    """The reference VGGT-1B with camera + depth heads and our weights (vggt_1b preset only)."""
    sys.path.insert(0, str(repo))
    from vggt.models.vggt import VGGT as ReferenceVGGT

    if preset_name != "vggt_1b":
        raise SystemExit("--reference-repo needs --preset vggt_1b (the reference builds VGGT-1B's sizes)")
    model = ReferenceVGGT(enable_point=False, enable_track=False)
    missing, unexpected = model.load_state_dict(ours.state_dict(), strict=False)
    if missing or unexpected:
        raise SystemExit(f"weights do not fit the reference: missing {missing[:3]}, unexpected {unexpected[:3]}")
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="vggt_1b")
    parser.add_argument("--frames", default="1,4,8,16", help="window sizes of the forward benchmark")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--reference-repo", type=Path, help="folder holding the reference `vggt` package (upstream a288dd0f)")
    parser.add_argument("--compile", action="store_true", help="also measure torch.compile of the model")
    parser.add_argument("--out", type=Path, default=Path("out/bench_gpu"))
    args = parser.parse_args(argv)
    from moe3d_ros.engine import EngineConfig, InferenceEngine, resolve_device, resolve_precision
    from moe3d_ros.filtering import FilterConfig
    from moe3d_ros.model import VGGT, MoEConfig, preset
    from moe3d_ros.postprocess import camera_product, fused_cloud

    device = resolve_device(args.device)
    dtype = resolve_precision(args.precision, device)
    torch.manual_seed(0)
    config = preset(args.preset)
    height = (round(config.img_size * 480 / 640 / config.patch_size) * config.patch_size)  # 640x480 cameras
    hw = (height, config.img_size)
    models = {"DPT": VGGT(config).to(device).eval(), "MoE": VGGT(config.with_moe(MoEConfig())).to(device).eval()}
    models["MoE"].load_state_dict(models["DPT"].state_dict(), strict=False)  # the same backbone; the MoE head stays random
    frames_list = [int(f) for f in args.frames.split(",")]
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)
    results: dict = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
                     "precision": str(dtype).removeprefix("torch."), "preset": args.preset, "model_input": f"{hw[1]}x{hw[0]}",
                     "forward": {}, "node_path": {}, "options": {}}

    def forward(model, images):
        with torch.inference_mode(), autocast:
            return model(images, heads=("camera", "depth"))

    reference = reference_forward(args.reference_repo, models["DPT"], args.preset).to(device).eval() if args.reference_repo else None
    for frames in frames_list:
        images = torch.rand(frames, 3, *hw, device=device)
        row = {}
        for name, model in models.items():
            row[f"ours_{name}_s"] = timed(lambda m=model: forward(m, images), args.repeats, device)
            row[f"ours_{name}_peak_gib"] = peak_memory(lambda m=model: forward(m, images), device)
        if reference is not None:
            def run_reference():
                with torch.inference_mode(), autocast:
                    return reference(images)
            row["reference_s"] = timed(run_reference, args.repeats, device)
            row["reference_peak_gib"] = peak_memory(run_reference, device)
        results["forward"][frames] = row
        print(f"forward {frames} frames: " + ", ".join(f"{k} {v:.4f}" for k, v in row.items() if v is not None), flush=True)

    rng = np.random.default_rng(0)
    cameras = [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(8)]
    cfg = FilterConfig()
    cases = {"1 camera": (1, 1), "4 cameras": (4, 4), "1 camera, window 4": (4, 1)}  # frames, new frames per window
    for cache in (0, 8):
        engine = InferenceEngine(models["MoE"], EngineConfig(device=str(device), precision=args.precision, encoder_cache=cache))
        for case, (count, new) in cases.items():
            step = [0]

            def node_path():
                step[0] += 1
                # Each window's `new` frames are new, the others were in earlier windows (keyframes).
                keys = [("new", step[0], i) for i in range(new)] + [("seen", i) for i in range(count - new)]
                start = time.perf_counter()
                pred = engine.run(cameras[:count], keys=keys)
                post = time.perf_counter()
                products = [camera_product(pred, i, cfg, 1.0) for i in range(new)]  # published: the newest frames
                fused_cloud(pred, products, organized=True)
                return pred.timings, post - start, time.perf_counter() - post

            node_path()
            samples = [node_path() for _ in range(max(args.repeats, 1))]
            stages = {k: statistics.median(s[0].get(k, 0.0) for s in samples) for k in samples[0][0]}
            row = {"case": case, "encoder_cache": bool(cache), "engine_s": statistics.median(s[1] for s in samples),
                   "postprocess_s": statistics.median(s[2] for s in samples),
                   "total_s": statistics.median(s[1] + s[2] for s in samples), "stages_s": stages}
            results["node_path"][f"{case} | cache {'on' if cache else 'off'}"] = row
            print(f"node path, {case}, encoder cache {'on' if cache else 'off'}: {row['total_s'] * 1000:.1f} ms", flush=True)
    results["options"]["encoder_cache"] = "measured (node path, cache on / off)"
    if args.compile:
        compiled = torch.compile(models["DPT"])
        images = torch.rand(frames_list[-1], 3, *hw, device=device)
        start = time.perf_counter()
        forward(compiled, images)
        results["options"]["compile_warm_up_s"] = time.perf_counter() - start
        results["options"]["compiled_forward_s"] = timed(lambda: forward(compiled, images), args.repeats, device)
    for option in ("cuda_graph", "device_preprocess", "device_postprocess", "host_gpu_overlap"):
        results["options"].setdefault(option, "not implemented yet")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_gpu.json").write_text(json.dumps(results, indent=2, default=str))
    (args.out / "bench_gpu.md").write_text(markdown(results))
    print(markdown(results))
    return 0


def markdown(results: dict) -> str:
    lines = [f"Device: {results['device']}, {results['precision']}, preset {results['preset']}, model input {results['model_input']}", "",
             "| frames | ours DPT [ms] | ours MoE [ms] | MoE / DPT | reference [ms] | ours / reference | peak ours / reference [GiB] |",
             "|---:|---:|---:|---:|---:|---:|---|"]
    for frames, row in results["forward"].items():
        ref = row.get("reference_s")
        peak = f"{row['ours_DPT_peak_gib']:.2f} / {row['reference_peak_gib']:.2f}" if ref and row["ours_DPT_peak_gib"] is not None else "-"
        lines.append(f"| {frames} | {row['ours_DPT_s'] * 1000:.1f} | {row['ours_MoE_s'] * 1000:.1f} | {row['ours_MoE_s'] / row['ours_DPT_s']:.3f} | "
                     f"{ref * 1000:.1f} | {ref / row['ours_DPT_s']:.2f}x | {peak} |" if ref else
                     f"| {frames} | {row['ours_DPT_s'] * 1000:.1f} | {row['ours_MoE_s'] * 1000:.1f} | {row['ours_MoE_s'] / row['ours_DPT_s']:.3f} | - | - | - |")
    lines += ["", "| node path (MoE head) | encoder cache | engine [ms] | post-processing [ms] | total [ms] |", "|---|---|---:|---:|---:|"]
    for row in results["node_path"].values():
        lines.append(f"| {row['case']}, 640x480 | {'on' if row['encoder_cache'] else 'off'} | "
                     f"{row['engine_s'] * 1000:.1f} | {row['postprocess_s'] * 1000:.1f} | {row['total_s'] * 1000:.1f} |")
    lines += ["", "Speed options: " + "; ".join(f"{k}: {v}" for k, v in results["options"].items()), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
