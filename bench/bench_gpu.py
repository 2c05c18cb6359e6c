#!/usr/bin/env python3
"""Forward and node-path speed on one device, with every speed option on and off; JSON + markdown.

- forward, ours: VGGT with the DPT head and with the MoE head (random weights), camera + depth,
  for each window size in --frames; with --reference-repo also the reference implementation on the
  same weights with the same heads (camera + depth);
- the node's whole path from 640x480 uint8 images to the buffers the messages are built from
  (InferenceEngine.run, then the depth products of the newest frames and the fused cloud), per
  stage, for 1 camera, 4 cameras, and 1 camera with window_size 4 (3 of its 4 frames seen before),
  with the speed options switched on one after the other: preprocessing on the device,
  post-processing on the device, the encoder cache, CUDA graphs, and with --compile torch.compile;
  each row says how far its depth is from the plain path's and how long its first window took;
- peak device memory on CUDA.
Times are medians of --repeats runs after one warm-up, with CUDA events on a GPU. Results are
written after every section, so a run cut short keeps what it measured.

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


NODE_CASES = {"1 camera": (1, 1), "4 cameras": (4, 4), "1 camera, window 4": (4, 1)}  # frames, new frames per window


def option_sets(compile_too: bool) -> dict[str, dict]:
    """Engine options measured, each row adding one to the row before; 'plain' is the unoptimised path."""
    sets = {
        "plain": dict(device_preprocess=False),
        "+device preprocess": dict(),
        "+device postprocess": dict(keep_on_device=True),
        "+encoder cache": dict(keep_on_device=True, encoder_cache=8),
        "+CUDA graph": dict(keep_on_device=True, encoder_cache=8, cuda_graph=True),
    }
    if compile_too:
        sets["+compiled"] = dict(keep_on_device=True, encoder_cache=8, cuda_graph=True, compile=True)
    return sets


def node_path_row(engine, cameras: list[np.ndarray], count: int, new: int, repeats: int) -> dict:
    """The node's path for windows of `count` frames of which `new` are new (the others were in
    earlier windows: keyframes): the engine, then the depth products of the newest frames and the
    fused cloud, on the host or (engine.config.keep_on_device) on the device with one copy."""
    from moe3d_ros.outputs.device_postprocess import device_outputs
    from moe3d_ros.outputs.filtering import FilterConfig
    from moe3d_ros.outputs.postprocess import camera_product, fused_cloud

    cfg = FilterConfig()
    step = [0]

    def window():
        step[0] += 1
        keys = [("new", step[0], i) for i in range(new)] + [("seen", i) for i in range(count - new)]
        start = time.perf_counter()
        pred = engine.run(cameras[:count], keys=keys)
        post = time.perf_counter()
        if pred.on_device is not None:
            device_outputs(pred, list(range(new)), cfg, 1.0, [None] * new, cloud=True)
        else:
            products = [camera_product(pred, i, cfg, 1.0) for i in range(new)]
            fused_cloud(pred, products, organized=True)
        return pred.timings, post - start, time.perf_counter() - post, pred.depth[0]

    first_start = time.perf_counter()
    window()  # compiles, captures, selects kernels
    first_s = time.perf_counter() - first_start
    samples = [window() for _ in range(max(repeats, 1))]
    stages = {k: statistics.median(s[0].get(k, 0.0) for s in samples) for k in samples[0][0]}
    stages["postprocess"] = statistics.median(s[2] for s in samples)
    return {"engine_s": statistics.median(s[1] for s in samples), "postprocess_s": stages["postprocess"],
            "total_s": statistics.median(s[1] + s[2] for s in samples), "first_window_s": first_s, "stages_s": stages,
            "depth": samples[-1][3]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="vggt_1b")
    parser.add_argument("--frames", default="1,4,8,16", help="window sizes of the forward benchmark")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--reference-repo", type=Path, help="folder holding the reference `vggt` package (upstream a288dd0f)")
    parser.add_argument("--compile", action="store_true", help="also measure torch.compile (minutes per window shape)")
    parser.add_argument("--options", default="", help="comma-separated option rows to measure (default: all); plain always runs")
    parser.add_argument("--out", type=Path, default=Path("out/bench_gpu"))
    args = parser.parse_args(argv)
    from moe3d_ros.inference.engine import EngineConfig, InferenceEngine, resolve_device, resolve_precision
    from moe3d_ros.model import VGGT, MoEConfig, preset

    device = resolve_device(args.device)
    dtype = resolve_precision(args.precision, device)
    torch.manual_seed(0)
    config = preset(args.preset)
    height = (round(config.img_size * 480 / 640 / config.patch_size) * config.patch_size)  # 640x480 cameras
    hw = (height, config.img_size)
    with device:  # random initialisation on the device: seconds instead of minutes for vggt_1b
        models = {"DPT": VGGT(config).eval(), "MoE": VGGT(config.with_moe(MoEConfig())).eval()}
    models["MoE"].load_state_dict(models["DPT"].state_dict(), strict=False)  # the same backbone; the MoE head stays random
    frames_list = [int(f) for f in args.frames.split(",") if f]
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)
    results: dict = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
                     "precision": str(dtype).removeprefix("torch."), "preset": args.preset, "model_input": f"{hw[1]}x{hw[0]}",
                     "torch": torch.__version__, "forward": {}, "node_path": {}, "options": {}}

    def save() -> None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "bench_gpu.json").write_text(json.dumps(results, indent=2, default=str))
        (args.out / "bench_gpu.md").write_text(markdown(results))

    def forward(model, images):
        with torch.inference_mode(), autocast:
            return model(images, heads=("camera", "depth"))

    reference = None
    if args.reference_repo:
        with device:
            reference = reference_forward(args.reference_repo, models["DPT"], args.preset).to(device).eval()  # (its buffers are made on the CPU)
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
            with torch.inference_mode():
                row["depth_max_rel_diff_vs_reference"] = float((forward(models["DPT"], images).depth.float()
                                                                / run_reference()["depth"][..., 0].float() - 1).abs().max())
        if args.compile and frames == 4:  # the compiled forward in a CUDA graph (a minute or more to compile)
            engine = InferenceEngine(models["DPT"], EngineConfig(device=str(device), precision=args.precision, compile=True,
                                                                 cuda_graph=True))
            with torch.inference_mode():
                row["ours_DPT_compiled_s"] = timed(lambda: engine.forward(images), args.repeats, device)
            del engine
        results["forward"][frames] = row
        print(f"forward {frames} frames: " + ", ".join(f"{k} {v:.4f}" for k, v in row.items() if v is not None), flush=True)
        save()
    del reference
    if device.type == "cuda":
        torch.cuda.empty_cache()

    rng = np.random.default_rng(0)
    cameras = [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(8)]
    plain_depth = {}
    wanted = {"plain", *args.options.split(",")} if args.options else None
    for name, options in option_sets(args.compile).items():
        if wanted is not None and name not in wanted:
            continue
        engine = InferenceEngine(models["MoE"], EngineConfig(device=str(device), precision=args.precision, **options))
        for case, (count, new) in NODE_CASES.items():
            row = node_path_row(engine, cameras, count, new, args.repeats)
            depth = row.pop("depth")
            plain_depth.setdefault(case, depth)
            row.update(case=case, options=name, depth_max_rel_diff_vs_plain=float(np.nanmax(np.abs(depth / plain_depth[case] - 1))))
            results["node_path"][f"{case} | {name}"] = row
            stages = ", ".join(f"{k} {v * 1000:.1f}" for k, v in row["stages_s"].items())
            print(f"node path, {case}, {name}: {row['total_s'] * 1000:.1f} ms ({stages}; first window {row['first_window_s']:.1f} s)",
                  flush=True)
        results["options"][name] = {"config": options, "notes": engine.notes}
        del engine
        save()
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
    compiled = {frames: row["ours_DPT_compiled_s"] for frames, row in results["forward"].items() if "ours_DPT_compiled_s" in row}
    for frames, seconds in compiled.items():
        ref = results["forward"][frames].get("reference_s")
        lines.append(f"\nCompiled DPT forward in a CUDA graph, {frames} frames: {seconds * 1000:.1f} ms"
                     + (f" ({ref / seconds:.2f}x the reference)" if ref else ""))
    lines += ["", "| node path (MoE head), 640x480 | options | preprocess | engine [ms] | post-processing [ms] | total [ms] | "
              "first window [s] | depth vs plain |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for row in results["node_path"].values():
        lines.append(f"| {row['case']} | {row['options']} | {row['stages_s'].get('preprocess', 0) * 1000:.1f} | "
                     f"{row['engine_s'] * 1000:.1f} | {row['postprocess_s'] * 1000:.1f} | {row['total_s'] * 1000:.1f} | "
                     f"{row['first_window_s']:.1f} | {row['depth_max_rel_diff_vs_plain']:.1e} |")
    notes = sorted({note for option in results["options"].values() for note in option["notes"]})
    lines += ["", "Rows add one option each to the row before. " + " ".join(notes), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
