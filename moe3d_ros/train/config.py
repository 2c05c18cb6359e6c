"""Fine-tuning configuration: one YAML file, parsed into typed dataclasses.

Unknown keys and bad values are errors that name the key, so a typo never trains silently
with a default.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..data.synthetic.config import WORLDS
from ..data.synthetic.textures import TEXTURE_STYLES
from ..model import MoEConfig
from ..model.config import dataclass_from_dict
from .losses import LossConfig

BACKBONE_MODES = ("frozen", "partial", "full")
DATA_KINDS = ("synthetic", "moe3d", "7scenes", "nrgbd", "tum", "scannet")


@dataclass(frozen=True)
class ModelSection:
    preset: str = "tiny"  # architecture (vggt_1b, demo, tiny) when `checkpoint` is a published file or absent
    checkpoint: str | None = None  # published VGGT file, or one of our checkpoint folders
    depth_head: str = "moe"  # "moe" or "dpt"
    moe: MoEConfig = field(default_factory=MoEConfig)
    init_noise: float = 0.0  # experts = DPT copies + noise * std(weight)
    init_spread: float = 0.0  # and their log-depth outputs offset evenly over [-spread, +spread]


@dataclass(frozen=True)
class TrainSection:
    backbone: str = "frozen"  # frozen: depth head only; partial: + last aggregator steps; full: all
    unfreeze_last: int = 4  # aggregator steps trained in "partial" mode
    steps: int = 1000
    batch_size: int = 1
    lr: float = 1e-4
    weight_decay: float = 0.01
    warmup_steps: int = 50
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio
    grad_clip: float = 1.0
    device: str = "auto"
    precision: str = "auto"  # bf16 autocast on CUDA, fp32 on the CPU
    gradient_checkpointing: bool = False
    seed: int = 0
    gate_temperature_start: float = 0.0  # > 0: MoE gate temperature annealed geometrically from this to model.moe.temperature


@dataclass(frozen=True)
class DataSection:
    kind: str = "synthetic"
    paths: tuple[str, ...] = ()  # dataset folders (not for synthetic)
    frames: int = 4  # window size S
    stride: tuple[int, int] = (1, 3)  # frame spacing drawn from this range
    target_width: int = 518  # model input width (518 for vggt_1b)
    augment: bool = True
    crop_hw: tuple[int, int] | None = None  # augmentation: the model sees this many camera pixels of each frame (target_width = its width)
    blur_max: float = 0.0  # augmentation: each frame blurred by a Gaussian of sigma uniform in [0, blur_max] camera pixels
    synthetic_seeds: tuple[int, int] = (0, 100000)  # scenes drawn from this range
    synthetic_hw: tuple[int, int] = (168, 224)
    synthetic_style: str = "natural"  # the generator's texture style: natural (rooms) or hard (two-colour patterns)
    synthetic_world: str = "plausible"  # plausible (everything rests on something) or floating (the earlier world)
    workers: int = 0  # processes that make batches ahead of the training loop (0: made in the loop)


@dataclass(frozen=True)
class OutputSection:
    dir: str = "runs/moe3d"
    log_every: int = 10
    checkpoint_every: int = 200
    tensorboard: bool = True  # when the tensorboard package is installed
    export_model: bool = False  # also write the whole trained model to <dir>/model (head-only runs too)


@dataclass(frozen=True)
class TrainConfig:
    model: ModelSection = field(default_factory=ModelSection)
    train: TrainSection = field(default_factory=TrainSection)
    loss: LossConfig = field(default_factory=LossConfig)
    data: DataSection = field(default_factory=DataSection)
    output: OutputSection = field(default_factory=OutputSection)

    def __post_init__(self) -> None:
        problems = []
        if self.model.depth_head not in ("moe", "dpt"):
            problems.append(f"model.depth_head {self.model.depth_head!r}: use 'moe' or 'dpt'")
        if self.train.backbone not in BACKBONE_MODES:
            problems.append(f"train.backbone {self.train.backbone!r}: use one of {BACKBONE_MODES}")
        if self.train.steps < 1 or self.train.batch_size < 1:
            problems.append("train.steps and train.batch_size must be positive")
        if self.train.lr <= 0:
            problems.append("train.lr must be positive")
        if self.model.init_spread < 0:
            problems.append("model.init_spread must be >= 0 (a log-depth offset)")
        if self.train.gate_temperature_start < 0:
            problems.append("train.gate_temperature_start must be >= 0 (0: no annealing)")
        if self.data.kind not in DATA_KINDS:
            problems.append(f"data.kind {self.data.kind!r}: use one of {DATA_KINDS}")
        if self.data.kind != "synthetic" and not self.data.paths:
            problems.append(f"data.paths is empty: data.kind {self.data.kind!r} needs dataset folders")
        if self.data.frames < 1:
            problems.append("data.frames must be at least 1")
        if self.data.synthetic_style not in TEXTURE_STYLES:
            problems.append(f"data.synthetic_style {self.data.synthetic_style!r}: use one of {TEXTURE_STYLES}")
        if self.data.synthetic_world not in WORLDS:
            problems.append(f"data.synthetic_world {self.data.synthetic_world!r}: use one of {WORLDS}")
        if self.data.crop_hw is not None:
            if not self.data.augment:
                problems.append("data.crop_hw is an augmentation: set data.augment: true or remove data.crop_hw")
            elif self.data.target_width != self.data.crop_hw[1]:
                problems.append(f"data.crop_hw {list(self.data.crop_hw)}: set data.target_width to its width "
                                f"{self.data.crop_hw[1]} (the crop at native scale)")
        if self.data.blur_max < 0:
            problems.append(f"data.blur_max {self.data.blur_max}: use a sigma >= 0 pixels (0: no blur)")
        elif self.data.blur_max > 0 and not self.data.augment:
            problems.append("data.blur_max is an augmentation: set data.augment: true or data.blur_max: 0")
        if self.data.workers < 0:
            problems.append("data.workers must be >= 0 (0: batches made in the training loop)")
        if self.output.log_every < 1 or self.output.checkpoint_every < 1:
            problems.append("output.log_every and output.checkpoint_every must be positive")
        if problems:
            raise ValueError("invalid training config: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_train_config(path: str | Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Read a YAML file; `overrides` maps dotted keys (e.g. "train.steps", "model.moe.scope") to values."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"training config {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML ({exc})") from exc
    for dotted, value in (overrides or {}).items():
        *parents, key = dotted.split(".")
        node = data
        for parent in parents:
            node = node.setdefault(parent, {})
            if not isinstance(node, dict):
                raise ValueError(f"--set {dotted}: {parent} is not a section")
        node[key] = value
    return config_from_dict(data, str(path))


def config_from_dict(data: dict[str, Any], where: str = "config") -> TrainConfig:
    return dataclass_from_dict(TrainConfig, data, where)
