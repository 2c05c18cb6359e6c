#!/usr/bin/env python3
"""Where one end-to-end training step goes: data, encoder, aggregator, depth head, loss, backward,
optimiser, for a training YAML (its model, loss and data sections) on this machine.

    python bench/profile_train_step.py config/demo_e2e_mixture.yaml --steps 6
    python bench/profile_train_step.py config/demo_dpt.yaml --set data.frames=1 --set data.synthetic_hw=[84,112] \
        --set data.target_width=112 --set train.batch_size=8 --threads 2

Prints the median seconds of each stage over the steps after the first (allocation, kernel
selection), frames per second and frames per minute; `--json` appends the row to a file.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from moe3d_ros.cli.train import build_sampler, parse_overrides  # noqa: E402
from moe3d_ros.model.heads.moe_head import MoEDepthHead  # noqa: E402
from moe3d_ros.timing import StageTimer  # noqa: E402
from moe3d_ros.train.config import load_train_config  # noqa: E402
from moe3d_ros.train.losses import Targets, compute_losses  # noqa: E402
from moe3d_ros.train.trainer import Trainer  # noqa: E402


def profiled_step(trainer: Trainer) -> dict[str, float]:
    """One training step as Trainer.train_step does it, with every stage timed."""
    cfg = trainer.cfg
    timer = StageTimer(trainer.device)
    with timer.stage("data"):
        window = trainer.sampler.batch(trainer.step, 0, cfg.train.batch_size)
        images = window.images.to(trainer.device)
        targets = Targets(window.depth.to(trainer.device), window.valid.to(trainer.device),
                          window.extrinsics.to(trainer.device), window.intrinsics.to(trainer.device))
    trainer.model.train()
    if isinstance(trainer.model.depth_head, MoEDepthHead):
        trainer.model.depth_head.temperature = cfg.model.moe.temperature
    with timer.stage("encoder"):
        patches = trainer.model.aggregator.encode(images.flatten(0, 1))
    output = trainer.model(images, heads=trainer.heads, timer=timer, patches=patches)
    with timer.stage("loss"):
        losses = compute_losses(output, targets, cfg.loss, trainer.step < cfg.loss.winner_takes_all_steps)
    with timer.stage("backward"):
        trainer.optimizer.zero_grad(set_to_none=True)
        losses["total"].backward()
    with timer.stage("optimiser"):
        torch.nn.utils.clip_grad_norm_(trainer.params, cfg.train.grad_clip)
        trainer.optimizer.step()
    trainer.step += 1
    return dict(timer.seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--steps", type=int, default=5, help="timed steps (after one untimed)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--label", default="", help="name of this row in the printout and --json")
    parser.add_argument("--json", type=Path, help="append the row to this JSON-lines file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    overrides = parse_overrides(args.set)
    overrides.update({"output.dir": tempfile.mkdtemp(), "output.tensorboard": False, "data.workers": 0})
    cfg = load_train_config(args.config, overrides)
    trainer = Trainer(cfg, build_sampler(cfg.data, cfg.train.seed))
    rows = []
    for _ in range(args.steps + 1):
        start = time.perf_counter()
        stages = profiled_step(trainer)
        stages["step"] = time.perf_counter() - start
        rows.append(stages)
    medians = {key: statistics.median(row[key] for row in rows[1:]) for key in rows[0]}
    frames = cfg.train.batch_size * cfg.data.frames
    compute = medians["step"] - medians["data"]  # the data is made by worker processes in a real run
    row = {
        "label": args.label or args.config.stem,
        "config": str(args.config),
        "overrides": args.set,
        "threads": args.threads,
        "frames_per_step": frames,
        "hw": list(trainer.sampler.batch(0, 0, 1).images.shape[-2:]),
        "median_s": {k: round(v, 4) for k, v in medians.items()},
        "frames_per_min_compute": round(60 * frames / compute, 1),
        "frames_per_min_with_data": round(60 * frames / medians["step"], 1),
    }
    stages = ", ".join(f"{k} {v:.3f}" for k, v in medians.items() if k != "step")
    print(f"{row['label']}: {frames} frames/step at {row['hw'][0]}x{row['hw'][1]}, {args.threads} threads: step {medians['step']:.3f} s "
          f"({stages}); {row['frames_per_min_compute']} frames/min without data, {row['frames_per_min_with_data']} with")
    if args.json:
        with open(args.json, "a") as fh:
            fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
