"""Single-core throughput of the synthetic RGB-D generator (scene generation + rendering).

Usage: python bench/bench_synthetic.py [--sequences 10] [--frames 8] [--seed 0]
Prints per-sequence frames/s and their median.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"  # must precede importing numpy so its BLAS stays on one core

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from moe3d_ros.data.synthetic import SyntheticConfig, generate_sequence  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=10)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0, help="first scene seed; sequence i uses seed + i")
    args = parser.parse_args()

    config = SyntheticConfig()
    generate_sequence(args.seed, 1, config)  # warm-up: imports, allocator, FFT plans
    rates = []
    for index in range(args.sequences):
        start = time.perf_counter()
        generate_sequence(args.seed + index, args.frames, config)
        rates.append(args.frames / (time.perf_counter() - start))
        print(f"seed {args.seed + index}: {rates[-1]:.1f} frames/s")
    size = f"{config.height}x{config.width}"
    print(f"median {np.median(rates):.1f} frames/s at {size}, {args.frames} frames per sequence")


if __name__ == "__main__":
    main()
