#!/usr/bin/env python3
"""Forward-pass speed and peak memory of the vggt_1b preset (camera + depth heads, random weights).

CPU (default): fp32, 2 threads, 1 frame 518x518 and 2 frames 294x518.
- Peak RSS: every (implementation, case) runs once in a fresh process, so the peak is its own.
- Time: one process holds the models and alternates them run by run (after a warm-up each), so
  both see the same machine state; medians and their ratio come from that one run.
With --reference-repo, the reference implementation (a local checkout of facebookresearch/vggt,
never part of this project) runs the same inputs: its full forward, as its users call it.

GPU: --device cuda --precision bf16 --cases 1x392x518,4x392x518,8x392x518 reports time and
torch's peak allocated memory per window size.

    python bench/bench_forward.py [--reference-repo /path/to/vggt] [--repeats 5]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


def parse_cases(text: str) -> list[tuple[int, int, int]]:
    return [tuple(int(x) for x in item.split("x")) for item in text.split(",")]  # type: ignore[misc]


def build_model(impl: str, device: str, reference_repo: str | None):
    import torch

    if impl == "ours":
        sys.path.insert(0, str(ROOT))
        from moe3d_ros.model import VGGT, preset

        with torch.device("meta"):
            model = VGGT(preset("vggt_1b"))
        model = model.to_empty(device=device)
    else:
        sys.path.insert(0, reference_repo)
        from vggt.models.vggt import VGGT as ReferenceVGGT  # type: ignore[import-not-found]

        # The reference cannot be built on the meta device (its encoder calls .item() while
        # building): build it with its own init, as its users do; the weights are replaced below.
        model = ReferenceVGGT().to(device)
    generator = torch.Generator(device="cpu").manual_seed(0)
    with torch.no_grad():
        for param in model.parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.02)
        for name, buffer in model.named_buffers():  # the reference keeps ImageNet stats as buffers
            for key, values in IMAGENET.items():
                if key in name:
                    buffer.copy_(torch.tensor(values).view(buffer.shape))
    return model.eval()


def forward(model, impl: str, images, dtype, timer=None):
    import torch

    with torch.inference_mode(), torch.autocast(images.device.type, dtype=dtype, enabled=dtype != torch.float32):
        if impl == "ours":
            model(images, heads=("camera", "depth"), timer=timer)
        else:
            model(images)


def timed(model, impl: str, images, dtype) -> tuple[float, dict[str, float]]:
    import torch

    from moe3d_ros.timing import StageTimer

    sync = images.device.type == "cuda"
    timer = StageTimer(images.device) if impl == "ours" else None
    if sync:
        torch.cuda.synchronize()
    start = time.perf_counter()
    forward(model, impl, images, dtype, timer)
    if sync:
        torch.cuda.synchronize()
    return time.perf_counter() - start, dict(timer.seconds) if timer else {}


def worker(args: argparse.Namespace) -> None:
    import resource

    import torch

    sys.path.insert(0, str(ROOT))
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[args.precision]
    impls = args.impl.split(",")
    models = {impl: build_model(impl, args.device, args.reference_repo) for impl in impls}
    results = []
    for frames, height, width in parse_cases(args.cases):
        images = torch.rand(frames, 3, height, width, generator=torch.Generator().manual_seed(1)).to(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        times: dict[str, list[float]] = {impl: [] for impl in impls}
        stages: dict[str, list[float]] = {}
        for impl in impls:  # warm-up, not counted
            timed(models[impl], impl, images, dtype)
        for _ in range(args.repeats):
            for impl in impls:
                seconds, stage_seconds = timed(models[impl], impl, images, dtype)
                times[impl].append(seconds)
                for name, value in stage_seconds.items():
                    stages.setdefault(name, []).append(value)
        result = {
            "case": f"{frames}x{height}x{width}",
            "times_s": times,
            "median_s": {impl: statistics.median(t) for impl, t in times.items() if t},
            "ours_stages_median_s": {k: statistics.median(v) for k, v in stages.items()},
            "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        }
        if device.type == "cuda":
            result["peak_cuda_gib"] = torch.cuda.max_memory_allocated() / 2**30
            result["device_name"] = torch.cuda.get_device_name()
        results.append(result)
    print("RESULT " + json.dumps(results))


def spawn(args: argparse.Namespace, impl: str, cases: str, repeats: int) -> list[dict]:
    cmd = [
        sys.executable, __file__, "--worker", "--impl", impl, "--cases", cases,
        "--threads", str(args.threads), "--repeats", str(repeats),
        "--device", args.device, "--precision", args.precision,
    ]  # fmt: skip
    if args.reference_repo:
        cmd += ["--reference-repo", args.reference_repo]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode:
        raise SystemExit(f"{impl} {cases} failed:\n{proc.stderr[-3000:]}")
    line = next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--impl", default="ours", help=argparse.SUPPRESS)
    parser.add_argument("--cases", default="1x518x518,2x294x518", help="FRAMESxHxW,... (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per case and implementation")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"))
    parser.add_argument("--reference-repo", help="checkout of facebookresearch/vggt to compare against")
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    impls = ["ours"] + (["reference"] if args.reference_repo else [])
    on_gpu = args.device.startswith("cuda")
    peak_rss = {}
    if not on_gpu:
        for impl in impls:
            for case in args.cases.split(","):
                peak_rss[(impl, case)] = spawn(args, impl, case, repeats=0)[0]["peak_rss_gib"]
    timing = spawn(args, ",".join(impls), args.cases, args.repeats)

    print(f"vggt_1b forward ({'camera + depth heads' if len(impls) == 1 else 'ours: camera + depth; reference: full forward'}), "
          f"{args.precision}, {args.device}, {args.threads} threads; median of {args.repeats} alternating runs after a warm-up")
    for row in timing:
        case = row["case"]
        for impl in impls:
            memory = (f"peak CUDA {row['peak_cuda_gib']:.2f} GiB" if on_gpu else f"peak RSS {peak_rss[(impl, case)]:.2f} GiB")
            stages = ", ".join(f"{k} {v:.3f}s" for k, v in row["ours_stages_median_s"].items()) if impl == "ours" else ""
            print(f"  {impl:<9} {case:<11} {row['median_s'][impl]:8.3f} s  {memory}  {stages}")
        if "reference" in impls:
            speedup = row["median_s"]["reference"] / row["median_s"]["ours"]
            print(f"  {case}: ours is {speedup:.2f}x faster; peak RSS {peak_rss[('ours', case)]:.2f} vs "
                  f"{peak_rss[('reference', case)]:.2f} GiB")
    print("JSON " + json.dumps({"timing": timing, "peak_rss_gib": {f"{i}/{c}": v for (i, c), v in peak_rss.items()}}))


if __name__ == "__main__":
    main()
