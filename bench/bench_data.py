#!/usr/bin/env python3
"""Training data throughput: synthetic batches per second with worker processes, and the share of
each training step spent waiting for its batch (the demo recipe's step 1 by default).

    python bench/bench_data.py [--workers 0,1,2] [--steps 20] [--batch 1,8] [--device auto]

For each batch size and worker count, part 1 times `sampler.batch` alone (frames/s made); part 2 runs the real
Trainer (demo preset, DPT head, whole model, 4 frames at 168x224) for --steps steps and reports
the median step time, frames/s trained and the median share of a step spent waiting for data.
The first steps (worker start-up, allocation) are not counted.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from moe3d_ros.cli.train import build_sampler  # noqa: E402
from moe3d_ros.data.prefetch import available_cores  # noqa: E402
from moe3d_ros.train.config import load_train_config  # noqa: E402
from moe3d_ros.train.trainer import Trainer  # noqa: E402

WARM_UP_STEPS = 3


def sampler_rate(cfg, batches: int) -> float:
    """Frames per second that the configured sampler (with its workers) delivers in step order."""
    sampler = build_sampler(cfg.data, cfg.train.seed)
    frames = cfg.train.batch_size * cfg.data.frames
    try:
        for step in range(WARM_UP_STEPS):
            sampler.batch(step, 0, cfg.train.batch_size)
        start = time.perf_counter()
        for step in range(WARM_UP_STEPS, WARM_UP_STEPS + batches):
            sampler.batch(step, 0, cfg.train.batch_size)
        return batches * frames / (time.perf_counter() - start)
    finally:
        if hasattr(sampler, "close"):
            sampler.close()


def training_rate(cfg, steps: int) -> dict[str, float]:
    trainer = Trainer(cfg, build_sampler(cfg.data, cfg.train.seed))
    step_s, wait = [], []
    try:
        for index in range(WARM_UP_STEPS + steps):
            start = time.perf_counter()
            values = trainer.train_step()
            if trainer.device.type == "cuda":
                torch.cuda.synchronize()
            if index >= WARM_UP_STEPS:
                step_s.append(time.perf_counter() - start)
                wait.append(values["data_s"] / step_s[-1])
    finally:
        if hasattr(trainer.sampler, "close"):
            trainer.sampler.close()
    median = statistics.median(step_s)
    return {"step_s": median, "frames_per_s": cfg.train.batch_size * cfg.data.frames / median,
            "data_wait_share": statistics.median(wait)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "config" / "demo_dpt.yaml")
    parser.add_argument("--workers", default=f"0,{max(available_cores() - 1, 1)}")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", default="1", help="windows per step, comma-separated")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, default=Path("out/bench_data"))
    args = parser.parse_args()
    results = {"cores": available_cores(), "device": "", "rows": []}
    runs = [(int(b), int(w)) for b in args.batch.split(",") for w in args.workers.split(",")]
    for batch, workers in runs:
        cfg = load_train_config(args.config, {"train.batch_size": batch, "train.device": args.device,
                                              "train.steps": 10**6, "data.workers": workers,
                                              "model.checkpoint": None,  # speed does not depend on the weights
                                              "output.dir": tempfile.mkdtemp(), "output.tensorboard": False})
        made = sampler_rate(cfg, max(args.steps, 2 * workers))
        trained = training_rate(cfg, args.steps)
        row = {"workers": workers, "batch": batch, "sampler_frames_per_s": made, **trained}
        results["rows"].append(row)
        print(f"workers {workers}, batch {batch}: sampler {made:.1f} frames/s; training {trained['step_s']:.3f} s/step = "
              f"{trained['frames_per_s']:.1f} frames/s, waiting for data {100 * trained['data_wait_share']:.0f}% of a step",
              flush=True)
    results["device"] = torch.cuda.get_device_name() if torch.cuda.is_available() and args.device != "cpu" else "cpu"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_data.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
