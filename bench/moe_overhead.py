#!/usr/bin/env python3
"""Parameter and FLOP overhead of the MoE depth head over the plain DPT head (vggt_1b, 518x518).

Counts on the meta device (no weights allocated), so it runs anywhere in seconds:
    python bench/moe_overhead.py [--height 518 --width 518 --frames 1]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from moe3d_ros.model import MoEConfig, preset  # noqa: E402
from moe3d_ros.model.cost import count_params_and_flops  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--height", type=int, default=518)
    parser.add_argument("--width", type=int, default=518)
    parser.add_argument("--frames", type=int, default=1)
    args = parser.parse_args()
    hw = (args.height, args.width)
    base_params, base_flops = count_params_and_flops(preset("vggt_1b"), hw, args.frames)
    print(f"vggt_1b, camera + depth heads, {args.frames} frame(s) {args.width}x{args.height}: "
          f"{base_params / 1e6:.2f} M parameters, {base_flops / 1e9:.1f} GFLOP with the DPT depth head")
    print("| expert scope | K | params | +params | GFLOP | +FLOPs |")
    print("|---|---:|---:|---:|---:|---:|")
    for scope in ("output", "fusion"):
        for k in (2, 4):
            cfg = preset("vggt_1b").with_moe(MoEConfig(num_experts=k, scope=scope))
            params, flops = count_params_and_flops(cfg, hw, args.frames)
            default = " (default)" if MoEConfig() == cfg.moe else ""
            print(f"| {scope}{default} | {k} | {params / 1e6:.2f} M | {100 * (params / base_params - 1):+.2f}% "
                  f"| {flops / 1e9:.1f} | {100 * (flops / base_flops - 1):+.2f}% |")


if __name__ == "__main__":
    main()
