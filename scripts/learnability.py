"""Learnability ladder: how well, and how fast, a small depth model learns the synthetic world.

A reference conv U-Net (about 2.7 M parameters) and VGGT architectures with their DPT depth head
(`demo_vit`: the demo preset as issue 26 found it; `demo`: today's, with a conv stem and an image
path into the head) are trained the same way on single frames: batch 8, scale-invariant
log-depth L1 plus multi-scale gradient matching, AdamW with a short warm-up and a constant rate,
on the frames that `WindowSampler` draws for each step (so every run sees the same frames). The
budget is counted in training frames, not minutes, so a run measures the same thing on a loaded
machine. Every `--eval-every` frames the run scores held-out frames (seeds from 900000, never
trained on) with the evaluation's metrics: AbsRel, Depth Pro boundary F1, depth-edge F1 at 1 px
and mixed pixels; the curves show where each model saturates and what a longer budget buys.

Runs are resumable (state.pt after every evaluation) and write progress to train.csv and eval.csv:
    python scripts/learnability.py train --model unet --world plausible      # runs/learnability/unet_plausible
    python scripts/learnability.py train --model demo --world floating
    python scripts/learnability.py report                                    # reports/learnability/
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from moe3d_ros.data.synthetic import SyntheticConfig
from moe3d_ros.data.synthetic.config import WORLDS
from moe3d_ros.data.windows import Augmentation, SyntheticWindows, WindowSampler
from moe3d_ros.eval import metrics as M
from moe3d_ros.eval.protocols import SYNTHETIC_EVAL_SEED0, SyntheticProtocol, synthetic_windows
from moe3d_ros.eval.render import depth_comparison, panel
from moe3d_ros.io.export import write_png
from moe3d_ros.model import VGGT, preset
from moe3d_ros.model.config import PRESETS, VGGTConfig
from moe3d_ros.train.losses import gradient_matching_loss, scale_invariant_loss

TRAIN_SEEDS = range(0, 100_000)
FINAL_EXTRA_SEED0 = SYNTHETIC_EVAL_SEED0 + 100  # the 16 more held-out scenes scored at the end
CURVE_KEYS = ("abs_rel", "boundary_f1", "boundary_f1_1px", "mixed_pixel_ratio")


class ConvBlock(nn.Sequential):
    """Two 3x3 convolutions, each with batch norm and ReLU."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class ConvUNet(nn.Module):
    """The reference: a plain U-Net (max-pool down, bilinear up, skip concatenation), log-depth out."""

    def __init__(self, widths: tuple[int, ...] = (24, 48, 96, 160, 256)) -> None:
        super().__init__()
        self.down = nn.ModuleList(ConvBlock(cin, cout) for cin, cout in zip((3, *widths[:-1]), widths))
        self.up = nn.ModuleList(ConvBlock(deep + skip, skip) for deep, skip in zip(widths[:0:-1], widths[-2::-1]))
        self.out = nn.Conv2d(widths[0], 1, 1)

    def forward(self, images: Tensor) -> Tensor:
        """images [B, 3, H, W] in [0, 1] -> depth [B, H, W] (up to scale)."""
        skips = []
        x = images - 0.5
        for index, block in enumerate(self.down):
            x = block(x if index == 0 else F.max_pool2d(x, 2, ceil_mode=True))
            skips.append(x)
        for block, skip in zip(self.up, skips[-2::-1]):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        return torch.exp(self.out(x)[:, 0])


def demo_vit() -> VGGTConfig:
    """The demo preset as the issue found it: patches only (no conv stem, no image path into the
    head) and VGGT's aggregator layer scale of 0.01."""
    config = preset("demo")
    return dataclasses.replace(
        config,
        encoder=dataclasses.replace(config.encoder, conv_stem=0),
        aggregator=dataclasses.replace(config.aggregator, layerscale_init=0.01),
        camera_head=dataclasses.replace(config.camera_head, layerscale_init=0.01),
        dpt=dataclasses.replace(config.dpt, image_skip=0),
    )


ARCHITECTURES = {"demo_vit": demo_vit, **PRESETS}


class SingleFrameVGGT(nn.Module):
    """A VGGT architecture with only its depth head, run on one frame per window."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.vggt = VGGT(ARCHITECTURES[name]().with_heads(("depth",)))

    def forward(self, images: Tensor) -> Tensor:
        return self.vggt(images[:, None], heads=("depth",)).depth[:, 0]


def build_model(name: str) -> nn.Module:
    if name == "unet":
        return ConvUNet()
    if name in ARCHITECTURES:
        return SingleFrameVGGT(name)
    raise SystemExit(f"--model {name!r}: use unet or a VGGT architecture ({', '.join(ARCHITECTURES)})")


def eval_frames(world: str, seed0: int, scenes: int, frames: int = 4) -> list[tuple[Tensor, np.ndarray, np.ndarray]]:
    """(image [3, H, W], depth, valid) of every frame of the held-out windows."""
    spec = SyntheticProtocol(scenes=scenes, frames=frames, seed0=seed0, world=world)
    return [(w.images[i], w.depth[i], w.valid[i]) for w in synthetic_windows(spec, 224) for i in range(len(w.images))]


@torch.inference_mode()
def predict(model: nn.Module, images: list[Tensor], chunk: int = 8) -> np.ndarray:
    model.eval()
    out = [model(torch.stack(images[i : i + chunk])).numpy() for i in range(0, len(images), chunk)]
    model.train()
    return np.concatenate(out)


def score(model: nn.Module, frames: list[tuple[Tensor, np.ndarray, np.ndarray]]) -> dict[str, float]:
    """The evaluation's per-frame metrics, averaged over frames."""
    predictions = predict(model, [f[0] for f in frames])
    values: dict[str, list[float]] = {k: [] for k in CURVE_KEYS}
    for pred, (_, gt, valid) in zip(predictions, frames):
        values["abs_rel"].append(M.depth_metrics(pred, gt, valid)["abs_rel"])
        values["boundary_f1"].append(M.boundary_f1(pred, gt, valid))
        values["boundary_f1_1px"].append(M.depth_edge_f1(pred, gt, valid))
        values["mixed_pixel_ratio"].append(M.mixed_pixel_ratio(pred, gt, valid))
    return {k: float(np.nanmean(v)) for k, v in values.items()}


def append_csv(path: Path, row: dict[str, float]) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as fh:
        writer = csv.DictWriter(fh, list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


def drop_rows_after(path: Path, step: int) -> None:
    """Drop the rows a stopped run logged after its last checkpoint: the resumed run logs those steps again."""
    if not path.exists():
        return
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    kept = [row for row in rows if int(row["step"]) <= step]
    if len(kept) < len(rows):
        with open(path, "w", newline="") as fh:
            writer = csv.DictWriter(fh, list(rows[0]))
            writer.writeheader()
            writer.writerows(kept)


def loss_of(pred: Tensor, depth: Tensor, valid: Tensor) -> Tensor:
    return scale_invariant_loss(pred, depth, valid) + gradient_matching_loss(pred, depth, valid)


def train(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    run = Path(args.runs) / f"{args.model}_{args.world}"
    run.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = build_model(args.model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    steps = math.ceil(args.frames / args.batch)
    eval_steps = max(1, args.eval_every // args.batch)
    step, elapsed = 0, 0.0
    if (run / "state.pt").exists():
        state = torch.load(run / "state.pt", weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, elapsed = int(state["step"]), float(state["elapsed"])
        for log in ("train.csv", "eval.csv"):
            drop_rows_after(run / log, step)
        print(f"resumed {run} at step {step}", flush=True)
    (run / "config.json").write_text(json.dumps({**vars(args), "parameters": sum(p.numel() for p in model.parameters())}, indent=2))
    sampler = WindowSampler(window_size=1, target_width=224, augment=Augmentation(), seed=0,
                            synthetic=SyntheticWindows(SyntheticConfig(world=args.world), TRAIN_SEEDS))
    held_out = eval_frames(args.world, SYNTHETIC_EVAL_SEED0, args.eval_scenes)
    while step < steps:
        start = time.perf_counter()
        batch = sampler.batch(step, 0, args.batch)
        for group in optimizer.param_groups:
            group["lr"] = args.lr * min(1.0, (step + 1) / args.warmup)
        pred = model(batch.images[:, 0])
        loss = loss_of(pred, batch.depth[:, 0], batch.valid[:, 0])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        step += 1
        elapsed += time.perf_counter() - start
        if step % 25 == 0:
            append_csv(run / "train.csv", {"step": step, "frames": step * args.batch, "loss": loss.item(), "seconds": round(elapsed, 1)})
        if step % eval_steps == 0 or step == steps:
            scores = score(model, held_out)
            append_csv(run / "eval.csv", {"step": step, "frames": step * args.batch, "seconds": round(elapsed, 1), **scores})
            print(f"{run.name} {step * args.batch} frames {elapsed / 60:.1f} min: "
                  + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()), flush=True)
            state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step, "elapsed": elapsed}
            torch.save(state, run / "state.tmp")
            (run / "state.tmp").replace(run / "state.pt")
    final(model, args, run)


def final(model: nn.Module, args: argparse.Namespace, run: Path) -> None:
    """final.json: the 8 issue scenes and 16 more held-out seeds of the run's world, the 8 of the
    other world; a picture of four held-out frames."""
    other = next(w for w in WORLDS if w != args.world)
    sets = {"issue_8": (args.world, SYNTHETIC_EVAL_SEED0, 8), "more_16": (args.world, FINAL_EXTRA_SEED0, 16),
            f"{other}_8": (other, SYNTHETIC_EVAL_SEED0, 8)}
    results = {name: score(model, eval_frames(*spec)) for name, spec in sets.items()}
    (run / "final.json").write_text(json.dumps(results, indent=2) + "\n")
    Path(args.reports).mkdir(parents=True, exist_ok=True)
    frames = eval_frames(args.world, SYNTHETIC_EVAL_SEED0, 4, frames=1)
    predictions = predict(model, [f[0] for f in frames])
    rows = [[("image", (f[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8))] + depth_comparison(p, f[1])
            for p, f in zip(predictions, frames)]
    write_png(Path(args.reports) / f"{run.name}.png", panel(rows))
    print(json.dumps(results, indent=2), flush=True)


def plot_curves(runs: list[Path], key: str, size: tuple[int, int] = (420, 640)) -> np.ndarray:
    """AbsRel (or `key`) against training frames, one coloured line per run, drawn with OpenCV."""
    height, width = size
    image = np.full((height, width, 3), 255, np.uint8)
    curves = {}
    for run in runs:
        with open(run / "eval.csv") as fh:
            rows = list(csv.DictReader(fh))
        curves[run.name] = np.array([[float(r["frames"]), float(r[key])] for r in rows])
    x_max = max(c[:, 0].max() for c in curves.values())
    y_max = max(max(c[:, 1].max() for c in curves.values()) * 1.1, 1e-3)
    left, bottom, top, right = 60, 40, 20, 180

    def to_px(x: float, y: float) -> tuple[int, int]:
        return int(left + x / x_max * (width - left - right)), int(height - bottom - y / y_max * (height - bottom - top))

    cv2.line(image, to_px(0, 0), to_px(x_max, 0), (0, 0, 0), 1)
    cv2.line(image, to_px(0, 0), to_px(0, y_max), (0, 0, 0), 1)
    for tick in np.linspace(0, y_max, 5):
        cv2.putText(image, f"{tick:.3f}", (5, to_px(0, tick)[1] + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
    for tick in np.linspace(0, x_max, 5):
        cv2.putText(image, f"{tick / 1000:.0f}k", (to_px(tick, 0)[0] - 8, height - bottom + 15), cv2.FONT_HERSHEY_SIMPLEX,
                    0.35, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(image, f"{key} vs training frames", (left, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    palette = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75), (0, 0, 0)]
    for index, (name, curve) in enumerate(sorted(curves.items())):
        color = palette[index % len(palette)]
        points = np.array([to_px(x, y) for x, y in curve], np.int32)
        cv2.polylines(image, [points], False, color, 2, cv2.LINE_AA)
        cv2.putText(image, name, (width - right + 8, top + 16 * (index + 1)), cv2.FONT_HERSHEY_SIMPLEX, 0.4, color, 1, cv2.LINE_AA)
    return image


def report(args: argparse.Namespace) -> None:
    """curves_<metric>.png over every run with an eval.csv, and results.md with each run's final.json."""
    runs = sorted(p for p in Path(args.runs).iterdir() if (p / "eval.csv").exists())
    if not runs:
        raise SystemExit(f"no runs with an eval.csv under {args.runs}")
    out = Path(args.reports)
    out.mkdir(parents=True, exist_ok=True)
    for key in CURVE_KEYS:
        write_png(out / f"curves_{key}.png", plot_curves(runs, key))
    lines = ["| run | parameters | frames | minutes | scene set | AbsRel | boundary F1 | edge F1 (1 px) | mixed pixels |",
             "|---|---:|---:|---:|---|---:|---:|---:|---:|"]
    for run in runs:
        if not (run / "final.json").exists():
            continue
        config = json.loads((run / "config.json").read_text())
        with open(run / "eval.csv") as fh:
            last = list(csv.DictReader(fh))[-1]
        for name, values in json.loads((run / "final.json").read_text()).items():
            lines.append(f"| {run.name} | {config['parameters'] / 1e6:.2f} M | {last['frames']} | {float(last['seconds']) / 60:.0f} | "
                         f"{name} | " + " | ".join(f"{values[k]:.4f}" for k in CURVE_KEYS) + " |")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("train", help="train one model on one world (resumes from its state.pt)")
    run.add_argument("--model", default="unet", help="unet, demo_vit (the demo preset before issue 26) or a VGGT preset")
    run.add_argument("--world", default="plausible", choices=WORLDS)
    run.add_argument("--frames", type=int, default=8000, help="training budget in frames")
    run.add_argument("--batch", type=int, default=8)
    run.add_argument("--lr", type=float, default=1e-3)
    run.add_argument("--warmup", type=int, default=100, help="steps of linear learning-rate warm-up")
    run.add_argument("--eval-every", type=int, default=1000, help="frames between held-out evaluations")
    run.add_argument("--eval-scenes", type=int, default=8, help="held-out scenes (4 frames each) per evaluation")
    run.add_argument("--threads", type=int, default=1)
    for p in (run, sub.add_parser("report", help="curves and the results table of every run")):
        p.add_argument("--runs", default="runs/learnability")
        p.add_argument("--reports", default="reports/learnability")
    args = parser.parse_args()
    train(args) if args.command == "train" else report(args)


if __name__ == "__main__":
    main()
