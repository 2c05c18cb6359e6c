#!/usr/bin/env python3
"""Device memory over many windows of the node's path, and recovery from an out-of-memory error.

Part 1 runs --windows sliding windows (1 camera, window 4: one new frame per window, three
keyframes seen before) through the engine with the node's speed options (encoder cache, device
post-processing, CUDA graphs where there is CUDA) and records the memory in use every --every
windows: allocated and reserved on CUDA, the process's RSS on the CPU. Growth is the last
reading minus the one after the first --every windows.

Part 2 (CUDA only) limits the process to a little more than one window needs, runs a window
four times larger (out of memory), releases the engine's memory as the node does after such an
error, and checks that the next normal window still runs and gives the same depth as before.

    python bench/gpu_memory.py [--preset tiny] [--windows 10000]
    python bench/gpu_memory.py --device cpu --windows 200 --every 50      # seconds, for CI
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402


def memory_now(device: torch.device) -> dict[str, float]:
    """Memory in use [MiB]: allocated and reserved on CUDA, peak RSS of the process on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        return {"allocated_mib": torch.cuda.memory_allocated() / 2**20, "reserved_mib": torch.cuda.memory_reserved() / 2**20}
    return {"max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--windows", type=int, default=10000)
    parser.add_argument("--every", type=int, default=1000)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, default=Path("out/gpu_memory"))
    args = parser.parse_args(argv)
    from moe3d_ros.outputs.device_postprocess import device_outputs
    from moe3d_ros.inference.engine import EngineConfig, InferenceEngine, resolve_device
    from moe3d_ros.outputs.filtering import FilterConfig
    from moe3d_ros.model import VGGT, MoEConfig, preset

    device = resolve_device(args.device)
    torch.manual_seed(0)
    model = VGGT(preset(args.preset).with_moe(MoEConfig()))
    engine = InferenceEngine(model, EngineConfig(device=str(device), encoder_cache=8, keep_on_device=True,
                                                 cuda_graph=device.type == "cuda"))
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(16)]
    cfg = FilterConfig()

    def window(step: int, count: int = 4):
        indices = [(step - i) % len(frames) for i in range(count)]  # the newest frame, then the three before it
        pred = engine.run([frames[i] for i in indices], keys=[("cam", step - i) for i in range(count)])
        device_outputs(pred, [0], cfg, 1.0, [None], cloud=True)
        return pred

    results = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu", "preset": args.preset,
               "windows": args.windows, "readings": {}}
    start = time.perf_counter()
    for step in range(1, args.windows + 1):
        window(step)
        if step % args.every == 0 or step == args.windows:
            results["readings"][step] = memory_now(device)
            print(f"window {step}: {results['readings'][step]}", flush=True)
            save(args.out, results)
    results["seconds"] = time.perf_counter() - start
    readings = list(results["readings"].values())
    results["growth_mib"] = {k: readings[-1][k] - readings[0][k] for k in readings[0]}
    results["encoder_cache_entries"] = len(engine.cache)
    print(f"growth after the first {args.every} windows: {results['growth_mib']} ({results['seconds']:.0f} s)")

    if device.type == "cuda":
        before = window(1).depth.copy()
        need = torch.cuda.memory_reserved()
        torch.cuda.set_per_process_memory_fraction(min(1.0, 1.5 * need / torch.cuda.get_device_properties(device).total_memory))
        try:
            window(2, count=16)
            results["oom"] = "no out-of-memory error raised (the limit was too generous)"
        except torch.OutOfMemoryError as exc:
            engine.release()
            results["oom"] = f"raised: {str(exc).splitlines()[0][:120]}"
        torch.cuda.set_per_process_memory_fraction(1.0)
        after = window(1).depth
        results["recovered"] = bool(np.allclose(after, before, rtol=1e-5, atol=1e-6))
        print(f"out of memory: {results['oom']}; next window ran and matches: {results['recovered']}")
    save(args.out, results)
    return 0


def save(folder: Path, results: dict) -> None:
    """Written after every reading: a run cut short keeps what it measured."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "gpu_memory.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    raise SystemExit(main())
