#!/usr/bin/env python3
"""Validation curves of the mixture study's rows (scripts/mixture_study.sh): every checkpoint of
every row scored on held-out validation scenes (seeds 800000 on: neither the training pool's nor
the test protocol's 900000 on), then one curve per metric against frames seen.

    python scripts/mixture_curves.py                 # score new checkpoints, draw the curves
    python scripts/mixture_curves.py --scenes 4 --runs runs/mixture_study --reports reports/mixture_study

Per row and checkpoint, runs/mixture_study/<row>/eval.csv gets: frames, AbsRel, 1 px edge F1,
mixed pixels of the decoded depth (the winner for a mixture), and for a mixture the same of the
oracle pick (per pixel the hypothesis nearest the truth) and of the mean. Resumable: checkpoints
already in eval.csv are skipped.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from learnability import plot_curves  # noqa: E402
from moe3d_ros.eval import protocols as P  # noqa: E402
from moe3d_ros.eval.report import aggregate  # noqa: E402
from moe3d_ros.eval.runner import Evaluator, score_window  # noqa: E402
from moe3d_ros.io.checkpoint import load_any  # noqa: E402
from moe3d_ros.io.export import write_png  # noqa: E402

VALIDATION_SEED0 = 800_000
KEYS = ("abs_rel", "boundary_f1_1px", "mixed_pixel_ratio")
CURVES = ("abs_rel", "boundary_f1_1px", "mixed_pixel_ratio", "oracle_mixed_pixel_ratio")


def checkpoints(run: Path) -> list[tuple[int, Path]]:
    """(step, folder) of the run's checkpoints in step order; `final` at the configured steps."""
    steps = json.loads((run / "train_config.json").read_text())["train"]["steps"]
    found = []
    for folder in (run / "checkpoints").iterdir():
        if not (folder / "model.safetensors").exists():
            continue
        found.append((steps if folder.name == "final" else int(folder.name.removeprefix("step_")), folder))
    return sorted(found)


def score(folder: Path, scenes: int, threads: int) -> dict[str, float]:
    torch.set_num_threads(threads)
    model, _ = load_any(folder)
    name = "moe" if model.config.depth_head == "moe" else "dpt"
    evaluator = Evaluator({name: model}, "cpu")
    per_scene = {}
    spec = P.SyntheticProtocol(scenes=scenes, frames=4, seed0=VALIDATION_SEED0)
    for window in P.synthetic_windows(spec, model.config.img_size):
        predictions = evaluator.predict(window.images, window.depth if name == "moe" else None)
        per_scene[window.name] = {system: score_window(window, pred, multi_view=False) for system, pred in predictions.items()}
    summary = aggregate(per_scene)
    decoded = summary["moe_winner" if name == "moe" else "dpt"]
    row = {key: decoded[key] for key in KEYS}
    for system in ("oracle", "mean"):
        if f"moe_{system}" in summary:
            row.update({f"{system}_{key}": summary[f"moe_{system}"][key] for key in KEYS})
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "mixture_study")
    parser.add_argument("--reports", type=Path, default=ROOT / "reports" / "mixture_study")
    parser.add_argument("--scenes", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    runs = sorted(p for p in args.runs.iterdir() if (p / "checkpoints").is_dir())
    for run in runs:
        config = json.loads((run / "train_config.json").read_text())
        frames_per_step = config["train"]["batch_size"] * config["data"]["frames"]
        table = run / "eval.csv"
        rows = list(csv.DictReader(table.open())) if table.exists() else []
        done = {int(r["step"]) for r in rows}
        for step, folder in checkpoints(run):
            if step in done:
                continue
            rows.append({"step": step, "frames": step * frames_per_step, **score(folder, args.scenes, args.threads)})
            fields = sorted({key for row in rows for key in row}, key=lambda k: (k not in ("step", "frames"), k))
            with table.open("w", newline="") as fh:
                writer = csv.DictWriter(fh, fields, restval="nan")
                writer.writeheader()
                writer.writerows(sorted(rows, key=lambda r: int(r["step"])))
            print(f"{run.name} step {step}: " + ", ".join(f"{k} {float(v):.4f}" for k, v in rows[-1].items()
                                                       if k not in ("step", "frames")), flush=True)
    args.reports.mkdir(parents=True, exist_ok=True)
    scored = [run for run in runs if (run / "eval.csv").exists()]
    for key in CURVES:
        usable = [run for run in scored if key in next(csv.DictReader((run / "eval.csv").open()))]
        if usable:
            write_png(args.reports / f"curves_{key}.png", plot_curves(usable, key))
    print(f"curves: {args.reports}")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
