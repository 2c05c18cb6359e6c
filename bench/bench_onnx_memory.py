#!/usr/bin/env python3
"""ONNX Runtime serving windows of 1-4 frames: resident memory and forward time of per-size
fixed-shape sessions against one session with a dynamic frame axis, in fp32 and fp16.

For each model (the bundled demo MoE model at 224x168; the `tiny` VGGT preset with a random MoE
head at VGGT's 518x392) the script exports, with moe3d-export's code: one fixed-shape fp32 file
per window size 1-4 (what earlier exports wrote), one dynamic fp32 file and one dynamic fp16 file.
Each variant is then served in its own fresh process, as a node would serve it: the backend
(`OnnxModel`) runs windows of every size in turn, `--repeats` times each after a warm-up. The
process reports its resident memory above what it held before the first session (peak RSS from
getrusage minus the RSS after imports: the sessions' weights, arenas and kernels) and the median
forward time per size. One variant runs at a time; nothing else should run on the machine.

    python bench/bench_onnx_memory.py [--repeats 5] [--threads 2] [--models demo,tiny] [--sizes 1,2,3,4]

Targets (issue 33): serving sizes 1-4 from the dynamic file costs at most 1.2x the memory of one
size (the fixed 4-frame file alone), fp16 at most 0.55x fp32, and the dynamic file's forward is
no more than 5% slower than the per-size file's at each size.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET_SIZES_OVER_ONE = 1.2
TARGET_FP16_OVER_FP32 = 0.55
TARGET_SLOWDOWN = 1.05
# variant -> (dynamic frame axis, precision); "one size" serves only the largest window (the reference)
VARIANTS = {"per-size fp32": (False, "fp32"), "one size fp32": (False, "fp32"),
            "dynamic fp32": (True, "fp32"), "dynamic fp16": (True, "fp16")}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads")
    parser.add_argument("--models", default="demo,tiny")
    parser.add_argument("--sizes", default="1,2,3,4", help="window sizes to serve")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)  # internal: serve one export, print JSON
    return parser.parse_args(argv)


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def serve(manifest: Path, sizes: list[int], repeats: int, threads: int) -> dict:
    """In this (fresh) process: windows of every size through one OnnxModel; memory above the
    imports and the median forward time per size."""
    import numpy as np
    import torch

    from moe3d_ros.inference.onnx_backend import OnnxModel

    torch.set_num_threads(threads)
    before = rss_bytes()
    model = OnnxModel(manifest, ["CPUExecutionProvider"], threads=threads)
    rng = np.random.default_rng(0)
    times: dict[int, float] = {}
    for frames in sizes:
        images = torch.from_numpy(rng.random((frames, 3, model.manifest.height, model.manifest.width), dtype=np.float32))
        model(images)  # warm-up: the session's first run allocates its arena
        runs = []
        for _ in range(repeats):
            start = time.perf_counter()
            model(images)
            runs.append(time.perf_counter() - start)
        times[frames] = statistics.median(runs)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"memory": peak - before, "times": times, "sessions": len(model._sessions), "description": model.description}


def export_variants(name: str, sizes: list[int], folder: Path) -> tuple[str, dict[str, Path]]:
    from moe3d_ros.io.checkpoint import DEMO_MODEL_DIR, load_model
    from moe3d_ros.io.onnx_export import export_onnx
    from moe3d_ros.model import VGGT, MoEConfig, preset
    import torch

    if name == "demo":
        model, description, (width, height) = load_model(DEMO_MODEL_DIR)[0], "bundled demo model (MoE head)", (224, 168)
    else:
        torch.manual_seed(0)
        model = VGGT(preset(name).with_moe(MoEConfig(num_experts=4))).eval()
        description, (width, height) = f"{name} VGGT preset, random MoE head", (518, 392)
    paths = {}
    for variant, (dynamic, precision) in VARIANTS.items():
        counts = [max(sizes)] if variant.startswith("one size") else sizes
        out = folder / name / variant.replace(" ", "_") / "model.onnx"
        export_onnx(model, counts, width, height, out, description, dynamic=dynamic, precision=precision)
        paths[variant] = out.with_suffix(".json")
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    return f"{description}, {width}x{height}, {weights / 2**20:.1f} MiB of fp32 weights", paths


def run_variant(manifest: Path, sizes: list[int], args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--serve", str(manifest), "--sizes", ",".join(map(str, sizes)),
               "--repeats", str(args.repeats), "--threads", str(args.threads)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    if args.serve:
        print(json.dumps(serve(args.serve, sizes, args.repeats, args.threads)))
        return 0
    import logging

    logging.disable(logging.INFO)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            description, paths = export_variants(name, sizes, Path(tmp))
            results = {variant: run_variant(path, [max(sizes)] if variant.startswith("one size") else sizes, args)
                       for variant, path in paths.items()}
            rows.append((name, description, results))
    print(f"ONNX Runtime CPU provider, {args.threads} threads, windows of {','.join(map(str, sizes))} frames, "
          f"median of {args.repeats}; memory: peak RSS above the process's RSS before its first session\n")
    header = " | ".join(f"{size} frames" for size in sizes)
    print(f"| model | variant | sessions | memory (MiB) | forward: {header} |")
    print("|---|---|---:|---:|" + "---:|" * len(sizes))
    for name, description, results in rows:
        for variant, r in results.items():
            cells = " | ".join(f"{r['times'][str(s)] * 1e3:.0f} ms" if str(s) in r["times"] else "-" for s in sizes)
            print(f"| {name} | {variant} | {r['sessions']} | {r['memory'] / 2**20:.0f} | {cells} |")
    print()
    for name, description, results in rows:
        mem = {variant: r["memory"] for variant, r in results.items()}
        sizes_over_one = mem["dynamic fp32"] / mem["one size fp32"]
        fp16_over_fp32 = mem["dynamic fp16"] / mem["dynamic fp32"]
        slowdown = max(results["dynamic fp32"]["times"][str(s)] / results["per-size fp32"]["times"][str(s)] for s in sizes)
        print(f"{name} ({description}):")
        print(f"  sizes {sizes[0]}-{sizes[-1]} dynamic / one size: {sizes_over_one:.2f}x (target <= {TARGET_SIZES_OVER_ONE}x: "
              f"{'reached' if sizes_over_one <= TARGET_SIZES_OVER_ONE else 'NOT reached'}); per-size sessions / one size: "
              f"{mem['per-size fp32'] / mem['one size fp32']:.2f}x")
        print(f"  fp16 / fp32 (dynamic): {fp16_over_fp32:.2f}x (target <= {TARGET_FP16_OVER_FP32}x: "
              f"{'reached' if fp16_over_fp32 <= TARGET_FP16_OVER_FP32 else 'NOT reached'})")
        print(f"  dynamic forward / per-size forward, worst size: {slowdown:.3f}x (target <= {TARGET_SLOWDOWN}x: "
              f"{'reached' if slowdown <= TARGET_SLOWDOWN else 'NOT reached'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
