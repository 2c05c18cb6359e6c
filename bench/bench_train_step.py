#!/usr/bin/env python3
"""Time per fine-tuning step of the MoE head (the real Trainer, synthetic windows, random weights).

    python bench/bench_train_step.py --preset vggt_1b --frames 2 --backbone frozen --steps 3
    python bench/bench_train_step.py --preset tiny --frames 4 --backbone full --steps 20 --width 224

The first step (allocation, kernel selection) is not counted; the median of the rest is printed.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from moe3d_ros.cli.train import build_sampler  # noqa: E402
from moe3d_ros.train.config import config_from_dict  # noqa: E402
from moe3d_ros.train.trainer import Trainer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="vggt_1b")
    parser.add_argument("--frames", type=int, default=2)
    parser.add_argument("--width", type=int, default=518, help="model input width")
    parser.add_argument("--backbone", default="frozen", choices=("frozen", "partial", "full"))
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--checkpointing", action="store_true", help="gradient checkpointing of the aggregator")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = config_from_dict({
        "model": {"preset": args.preset, "depth_head": "moe"},
        "train": {"backbone": args.backbone, "steps": args.steps + 1, "device": args.device, "warmup_steps": 1,
                  "gradient_checkpointing": args.checkpointing},
        "data": {"kind": "synthetic", "frames": args.frames, "target_width": args.width, "synthetic_hw": [392, 518]},
        "output": {"dir": tempfile.mkdtemp(), "checkpoint_every": 10**6, "tensorboard": False},
    })
    trainer = Trainer(cfg, build_sampler(cfg.data, 0))
    times = []
    for _ in range(args.steps + 1):
        start = time.perf_counter()
        trainer.train_step()
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    peak = f", peak CUDA {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB" if trainer.device.type == "cuda" else ""
    print(f"{args.preset}, MoE head (K=4, output scope), backbone {args.backbone}, {args.frames} frames at {args.width} px wide, "
          f"{trainer.device} {str(trainer.dtype).removeprefix('torch.')}, {args.threads} threads: "
          f"median {statistics.median(times[1:]):.2f} s/step over {args.steps} steps (first step {times[0]:.2f} s){peak}")


if __name__ == "__main__":
    main()
