"""moe3d-train: fine-tune the depth head (MoE or DPT) from a YAML config.

Single process:      moe3d-train config/train_moe_synthetic.yaml
Several GPUs/CPUs:   torchrun --nproc_per_node=N -m moe3d_ros.cli.train config.yaml
Resume:              moe3d-train config.yaml --resume            (latest checkpoint of output.dir)
Override a value:    moe3d-train config.yaml --set train.steps=200 --set data.frames=2
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

import yaml

from ..data.sources import DatasetError
from ..io.checkpoint import CheckpointError
from ..train.config import DataSection, TrainConfig, load_train_config

LOG = logging.getLogger("moe3d-train")


def build_sampler(data: DataSection, seed: int):
    """The WindowSampler the config describes, behind worker processes when data.workers > 0."""
    from ..data.prefetch import PrefetchingSampler
    from ..data.readers import open_sources
    from ..data.synthetic import SyntheticConfig
    from ..data.windows import Augmentation, SyntheticWindows, WindowSampler

    augment = Augmentation(crop=data.crop_hw, max_blur=data.blur_max) if data.augment else None
    common = dict(window_size=data.frames, stride=data.stride, target_width=data.target_width, augment=augment, seed=seed)
    if data.kind == "synthetic":
        synthetic = SyntheticWindows(
            SyntheticConfig(height=data.synthetic_hw[0], width=data.synthetic_hw[1], texture_style=data.synthetic_style,
                            world=data.synthetic_world),
            range(*data.synthetic_seeds),
        )
        sampler = WindowSampler(synthetic=synthetic, **common)
    else:
        sampler = WindowSampler([source for path in data.paths for source in open_sources(data.kind, path)], **common)
    return PrefetchingSampler(sampler, data.workers) if data.workers > 0 else sampler


def parse_overrides(items: list[str]) -> dict[str, Any]:
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or "." not in key:
            raise ValueError(f"--set {item!r}: expected section.key=value (e.g. train.steps=100)")
        overrides[key] = _number_or_yaml(value)
    return overrides


def _number_or_yaml(text: str) -> Any:
    """YAML reads `1e-3` as a string (it wants `1.0e-3`); on a command line it means a number."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return yaml.safe_load(text)


def main(argv: list[str] | None = None) -> int:
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING,
        format=f"[%(name)s{'' if rank == 0 else f' rank {rank}'}] %(levelname)s: %(message)s",
    )
    parser = argparse.ArgumentParser(prog="moe3d-train", description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path, help="training YAML (see config/train_*.yaml)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override a config value")
    parser.add_argument("--resume", nargs="?", const="latest", help="continue from a checkpoint folder (default: the latest)")
    args = parser.parse_args(argv)
    try:
        cfg: TrainConfig = load_train_config(args.config, parse_overrides(args.set))
        sampler = build_sampler(cfg.data, cfg.train.seed)
        from ..train.trainer import Trainer

        trainer = Trainer(cfg, sampler)
        if args.resume == "latest":
            if not trainer.resume():
                LOG.info("no checkpoint in %s yet: starting from step 0", cfg.output.dir)
        elif args.resume:
            trainer.resume(Path(args.resume))
        final = trainer.fit()
    except (ValueError, FileNotFoundError, CheckpointError, DatasetError) as exc:
        LOG.error("%s", exc)
        return 2
    if rank == 0:
        print(f"done: {final}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
