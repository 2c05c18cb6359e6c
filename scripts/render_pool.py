#!/usr/bin/env python3
"""Render a fixed pool of synthetic training sequences to disk (moe3d sequence folders), once.

Rendering a 168x224 frame costs about as much as training on it on 2 cores; rows of a study that
read one rendered pool train on the same frames and spend their cores on the model. Resumable: a
sequence already written is skipped.

    python scripts/render_pool.py --out runs/pool --scenes 800 --frames 6
    moe3d-train config/demo_e2e_mixture.yaml --set data.kind=moe3d --set "data.paths=[runs/pool]"
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from moe3d_ros.data.generic import is_sequence_folder, write_sequence  # noqa: E402
from moe3d_ros.data.synthetic import SyntheticConfig, generate_sequence  # noqa: E402

EVALUATION_SEEDS_FROM = 900_000  # the protocol's held-out scenes: never rendered for training


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/pool"))
    parser.add_argument("--scenes", type=int, default=800)
    parser.add_argument("--frames", type=int, default=6, help="views per scene, along its camera path")
    parser.add_argument("--seed0", type=int, default=0)
    parser.add_argument("--hw", type=int, nargs=2, default=(168, 224))
    parser.add_argument("--world", default="plausible")
    args = parser.parse_args()
    if args.seed0 + args.scenes > EVALUATION_SEEDS_FROM:
        parser.error(f"seeds from {EVALUATION_SEEDS_FROM} are the evaluation's: use fewer scenes or a lower --seed0")
    config = SyntheticConfig(height=args.hw[0], width=args.hw[1], world=args.world)
    start = time.perf_counter()
    written = 0
    for seed in range(args.seed0, args.seed0 + args.scenes):
        folder = args.out / f"synthetic_{seed:06d}"
        if is_sequence_folder(folder):
            continue
        partial = folder.with_name(folder.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)  # left by an interrupted run
        write_sequence(generate_sequence(seed, args.frames, config), partial)
        partial.rename(folder)  # a folder with sequence.json is complete
        written += 1
        if written % 50 == 0:
            print(f"render_pool: {seed + 1 - args.seed0}/{args.scenes} scenes, {time.perf_counter() - start:.0f} s", flush=True)
    print(f"render_pool: {args.scenes} scenes of {args.frames} frames in {args.out} ({written} rendered now, "
          f"{time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
