"""Fine-tuning loop: single process (CPU or GPU) or torchrun DDP, with exact resume.

Determinism is by construction: the window of step i on rank r depends only on (seed, i, r),
so resuming from a checkpoint (model, optimiser and schedule state) continues exactly where an
uninterrupted run would have been.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from ..inference.engine import resolve_device, resolve_precision
from ..io.checkpoint import (
    CONFIG_FILE,
    CheckpointError,
    load_head_weights,
    load_vggt_weights,
    read_config,
    resolve_path,
    save_model,
)
from ..model import VGGT, preset
from ..model.heads.moe_head import MoEDepthHead
from ..progress import Progress
from .config import TrainConfig
from .losses import Targets, compute_losses

LOG = logging.getLogger("moe3d.train")
STATE_FILE = "trainer_state.pt"
LATEST_FILE = "latest.txt"


@dataclass
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def setup_distributed(device: torch.device) -> Distributed:
    """torchrun sets WORLD_SIZE/RANK/LOCAL_RANK; gloo on the CPU, NCCL on GPUs."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Distributed()
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Distributed(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def build_model(cfg: TrainConfig) -> tuple[VGGT, str]:
    """The model to train, with the configured depth head, initialised from the checkpoint."""
    section = cfg.model
    weights: Path | None = None
    if section.checkpoint:
        path = resolve_path(section.checkpoint)
        if path.is_dir() and (path / CONFIG_FILE).exists():
            base, _ = read_config(path)
            weights = path
        else:
            base, weights = preset(section.preset), path
    else:
        base = preset(section.preset)
    base = base.with_heads(("camera", "depth"))
    config = base.with_moe(section.moe) if section.depth_head == "moe" else dataclasses.replace(base, depth_head="dpt")
    model = VGGT(config)
    if weights is None:
        return model, f"{section.preset} preset, random initialisation"
    report = load_vggt_weights(model, weights)
    initialised_from_dpt = bool(report.notes)  # the experts are identical copies of a DPT head
    if isinstance(model.depth_head, MoEDepthHead) and initialised_from_dpt:
        if section.init_noise > 0:
            model.depth_head.perturb_experts(section.init_noise, torch.Generator().manual_seed(cfg.train.seed))
        if section.init_spread > 0:
            model.depth_head.spread_experts(section.init_spread)
    return model, report.summary()


def set_trainable(model: VGGT, cfg: TrainConfig) -> list[nn.Parameter]:
    """Freeze what the backbone mode says; returns the parameters to optimise."""
    model.requires_grad_(False)
    model.depth_head.requires_grad_(True)
    train_camera = cfg.loss.camera_weight > 0
    if cfg.train.backbone == "full":
        model.aggregator.requires_grad_(True)
    elif cfg.train.backbone == "partial":
        last = cfg.train.unfreeze_last
        for blocks in (model.aggregator.frame_blocks, model.aggregator.global_blocks):
            for block in list(blocks)[-last:] if last > 0 else []:
                block.requires_grad_(True)
    if train_camera and model.camera_head is not None:
        model.camera_head.requires_grad_(True)
    model.aggregator.patch_embed.mask_token.requires_grad_(False)  # in the checkpoint, never used
    return [p for p in model.parameters() if p.requires_grad]


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to min_lr_ratio."""
    t = cfg.train
    if step < t.warmup_steps:
        return (step + 1) / t.warmup_steps
    progress = (step - t.warmup_steps) / max(1, t.steps - t.warmup_steps)
    return t.min_lr_ratio + (1 - t.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def gate_temperature(step: int, cfg: TrainConfig) -> float:
    """The MoE gate's softmax temperature at `step`: geometric from train.gate_temperature_start
    to model.moe.temperature over the run (soft assignments first, harder ones later), or the
    constant model.moe.temperature without annealing."""
    start, end = cfg.train.gate_temperature_start, cfg.model.moe.temperature
    if start <= 0:
        return end
    progress = min(step / max(1, cfg.train.steps - 1), 1.0)
    return start * (end / start) ** progress


def make_optimizer(params: list[nn.Parameter], cfg: TrainConfig) -> torch.optim.AdamW:
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": cfg.train.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.train.lr)


class MetricsLog:
    """CSV always; TensorBoard too when it is installed and wanted."""

    def __init__(self, folder: Path, tensorboard: bool) -> None:
        self.path = folder / "metrics.csv"
        self.fields: list[str] | None = None
        if self.path.exists():
            with open(self.path) as fh:
                self.fields = next(csv.reader(fh), None)
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(folder / "tensorboard"))
            except ImportError:
                LOG.info("tensorboard is not installed: logging to %s only", self.path)

    def write(self, step: int, values: dict[str, float]) -> None:
        row = {"step": step, **values}
        if self.fields is None:
            self.fields = list(row)
            with open(self.path, "w", newline="") as fh:
                csv.writer(fh).writerow(self.fields)
        with open(self.path, "a", newline="") as fh:
            csv.DictWriter(fh, self.fields, extrasaction="ignore").writerow(row)
        if self.writer is not None:
            for key, value in values.items():
                self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class Trainer:
    def __init__(self, cfg: TrainConfig, sampler: Any) -> None:
        """`sampler.batch(step, rank, batch_size)` returns the step's TrainingWindow batch."""
        self.cfg = cfg
        self.sampler = sampler
        self.device = resolve_device(cfg.train.device)
        self.dtype = resolve_precision(cfg.train.precision, self.device)
        self.dist = setup_distributed(self.device)
        if self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
            torch.cuda.set_device(self.device)
        torch.manual_seed(cfg.train.seed)
        self.model, self.init_description = build_model(cfg)
        self.model.aggregator.gradient_checkpointing = cfg.train.gradient_checkpointing
        self.model.to(self.device)
        self.params = set_trainable(self.model, cfg)
        self.optimizer = make_optimizer(self.params, cfg)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda step: lr_factor(step, cfg))
        self.heads = ("camera", "depth") if cfg.loss.camera_weight > 0 else ("depth",)
        self.forward_model: nn.Module = self.model
        if self.dist.active:
            device_ids = [self.dist.local_rank] if self.device.type == "cuda" else None
            self.forward_model = nn.parallel.DistributedDataParallel(self.model, device_ids=device_ids)
        self.out_dir = Path(cfg.output.dir)
        self.step = 0

    # -- checkpoints -------------------------------------------------------------------------
    @property
    def head_only(self) -> bool:
        """With a frozen backbone only the depth head changes: checkpoints hold just that."""
        return self.cfg.train.backbone == "frozen"

    def save_checkpoint(self, name: str) -> Path:
        folder = self.out_dir / "checkpoints" / name
        metadata = {
            "description": f"moe3d_ros fine-tuning step {self.step}",
            "step": self.step,
            "base": self.cfg.model.checkpoint,
            "train_config": self.cfg.to_dict(),
        }
        save_model(self.model, folder, metadata=metadata, head_only=self.head_only)
        state = {"step": self.step, "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}
        torch.save(state, folder / STATE_FILE)
        (self.out_dir / LATEST_FILE).write_text(name + "\n")
        return folder

    def resume(self, folder: Path | None = None) -> bool:
        """Continue from `folder`, or from the output folder's latest checkpoint when None."""
        if folder is None:
            latest = self.out_dir / LATEST_FILE
            if not latest.exists():
                return False
            folder = self.out_dir / "checkpoints" / latest.read_text().strip()
        if not (folder / STATE_FILE).exists():
            raise CheckpointError(f"{folder} holds no {STATE_FILE}: not a training checkpoint")
        if self.head_only:
            load_head_weights(self.model, folder)
        else:
            load_vggt_weights(self.model, folder)
        state = torch.load(folder / STATE_FILE, map_location=self.device, weights_only=True)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = int(state["step"])
        LOG.info("resumed from %s at step %d", folder, self.step)
        return True

    # -- training ----------------------------------------------------------------------------
    def train_step(self) -> dict[str, float]:
        start = time.perf_counter()
        window = self.sampler.batch(self.step, self.dist.rank, self.cfg.train.batch_size)
        data_s = time.perf_counter() - start  # time the step waited for its batch
        images = window.images.to(self.device)
        targets = Targets(
            depth=window.depth.to(self.device),
            valid=window.valid.to(self.device),
            extrinsics=window.extrinsics.to(self.device),
            intrinsics=window.intrinsics.to(self.device),
        )
        self.model.train()
        if isinstance(self.model.depth_head, MoEDepthHead):
            self.model.depth_head.temperature = gate_temperature(self.step, self.cfg)
        autocast = torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32)
        with autocast:
            output = self.forward_model(images, heads=self.heads)
        losses = compute_losses(output, targets, self.cfg.loss, self.step < self.cfg.loss.winner_takes_all_steps)
        self.optimizer.zero_grad(set_to_none=True)
        losses["total"].backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, self.cfg.train.grad_clip)
        self.optimizer.step()
        lr = self.scheduler.get_last_lr()[0]
        self.scheduler.step()
        self.step += 1
        return {**{k: float(v.detach()) for k, v in losses.items()}, "grad_norm": float(grad_norm), "lr": lr, "data_s": data_s}

    def fit(self) -> Path:
        cfg = self.cfg
        if self.dist.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / "train_config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
            LOG.info("model: %s; training %d parameters (%s backbone) on %s %s, %d process(es)",
                     self.init_description, sum(p.numel() for p in self.params), cfg.train.backbone,
                     self.device, str(self.dtype).removeprefix("torch."), self.dist.world_size)
        metrics = MetricsLog(self.out_dir, cfg.output.tensorboard) if self.dist.is_main else None
        progress = Progress(cfg.train.steps, self.step, cfg.output.log_every)
        while self.step < cfg.train.steps:
            start = time.perf_counter()
            values = self.train_step()
            values["seconds"] = time.perf_counter() - start
            if metrics is not None:
                if self.step % cfg.output.log_every == 0 or self.step == cfg.train.steps:
                    metrics.write(self.step, values)
                progress.update(self.step - 1, {k: values[k] for k in ("total", "nll", "entropy") if k in values})
                if self.step % cfg.output.checkpoint_every == 0 and self.step < cfg.train.steps:
                    self.save_checkpoint(f"step_{self.step:07d}")
        final = self.out_dir / "checkpoints" / "final"
        if self.dist.is_main:
            final = self.save_checkpoint("final")
            if cfg.output.export_model:
                metadata = {"description": f"trained with moe3d-train ({cfg.model.depth_head} head, {self.step} steps)",
                            "train_config": cfg.to_dict()}
                save_model(self.model, self.out_dir / "model", metadata=metadata)
            metrics.close()
        self.check_ranks_agree(final)
        if hasattr(self.sampler, "close"):
            self.sampler.close()
        return final

    def check_ranks_agree(self, final: Path) -> None:
        """With DDP, every rank must end with the same weights; record the per-rank checksums."""
        if not self.dist.active:
            return
        device = self.device if self.device.type == "cuda" else torch.device("cpu")
        checksum = torch.tensor([sum(float(p.detach().double().sum()) for p in self.model.parameters())], device=device)
        gathered = [torch.zeros_like(checksum) for _ in range(self.dist.world_size)]
        dist.all_gather(gathered, checksum)
        sums = [float(t) for t in gathered]
        if self.dist.is_main:
            (final / "ranks.json").write_text(json.dumps({"world_size": self.dist.world_size, "weight_checksums": sums}) + "\n")
            if len(set(sums)) != 1:
                raise RuntimeError(f"ranks ended with different weights: checksums {sums}")
        dist.barrier()
        dist.destroy_process_group()
