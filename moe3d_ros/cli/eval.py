"""moe3d-eval: score the DPT head and the MoE head (both fusions) on the same frames.

    moe3d-eval --protocol synthetic --scenes 8 --frames 4                  # bundled demo models
    moe3d-eval --protocol synthetic --backend onnxruntime --onnx-model demo.onnx,demo_dpt.onnx  # exported ones
    moe3d-eval --protocol 7scenes --data-root /data/7scenes --density sparse \\
        --checkpoint /path/to/VGGT-1B/model.pt --moe-head runs/moe/checkpoints/final
    moe3d-eval --protocol nyu --data-root /data/nyu --checkpoint model.pt --moe-head head/

Writes report.md, results.json and PNG figures into --out; per-scene results are kept in
--out/scenes, so an interrupted run continues where it stopped.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
from pathlib import Path

import torch

from ..data.blur import BlurCondition
from ..data.sources import DatasetError
from ..data.synthetic.config import WORLDS
from ..data.synthetic.textures import TEXTURE_STYLES
from ..eval import protocols as P
from ..eval.report import METRICS, scene_figure, write_report
from ..eval.runner import Evaluator, score_window
from ..outputs.filtering import EDGE_TESTS, FilterConfig
from ..io.checkpoint import (
    CONFIG_FILE,
    DEMO_BASELINE_DIR,
    DEMO_MODEL_DIR,
    DEMO_WARNING,
    CheckpointError,
    load_any,
    read_config,
    resolve_path,
)
from ..inference.onnx_backend import BackendUnavailable, OnnxModel
from ..inference.onnx_manifest import ExportError
from ..model import PRESETS, VGGT
from .backend import add_backend_arguments, check_backend_arguments, onnx_model_from
from ..progress import Progress

SCORED = sorted(METRICS)  # a cached scene scored for another metric set is scored again
LOG = logging.getLogger("moe3d-eval")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="moe3d-eval", description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", required=True, choices=P.PROTOCOLS)
    parser.add_argument("--data-root", type=Path, help="dataset root in its published layout (not for synthetic)")
    parser.add_argument("--density", default="sparse", choices=("sparse", "dense"), help="7scenes/nrgbd frame spacing")
    parser.add_argument("--scenes", type=int, default=8, help="synthetic: number of held-out scenes")
    parser.add_argument("--frames", type=int, default=4, help="synthetic: frames per window")
    parser.add_argument("--style", default="natural", choices=TEXTURE_STYLES, help="synthetic: the generator's texture style")
    parser.add_argument("--world", default="plausible", choices=WORLDS,
                        help="synthetic: plausible (objects rest on something, robot cameras) or floating (the earlier world)")
    parser.add_argument("--seed0", type=int, default=P.SYNTHETIC_EVAL_SEED0,
                        help=f"synthetic: first held-out scene seed (>= {P.SYNTHETIC_EVAL_SEED0}: never trained on)")
    parser.add_argument("--blur", type=float, default=0.0, metavar="SIGMA",
                        help="Gaussian blur of the input images, sigma in pixels (ground truth unchanged)")
    parser.add_argument("--motion-blur", type=float, default=0.0, metavar="PX",
                        help="blur each frame along its own image motion to the next frame, median length PX pixels "
                             "(multi-view protocols)")
    parser.add_argument("--oracle", action="store_true",
                        help="also score the MoE model's oracle pick: per pixel the hypothesis nearest the ground truth "
                             "(multi-view protocols; says whether the hypotheses lie on the surfaces)")
    parser.add_argument("--filter-edge-test", choices=EDGE_TESTS, default=FilterConfig.edge_test,
                        help="the node's filter.edge_test for the published_* metrics (the depth as moe3d_node publishes "
                             "it with its default filter otherwise)")
    parser.add_argument("--max-scenes", type=int, default=0, help="stop after this many scenes (0: all)")
    parser.add_argument("--checkpoint", help="VGGT .pt/.safetensors, org/name, or our checkpoint folder; default: bundled demo models")
    parser.add_argument("--preset", default="vggt_1b", choices=sorted(PRESETS), help="architecture of a published file")
    parser.add_argument("--moe-head", help="MoE depth-head folder to evaluate on top of --checkpoint")
    parser.add_argument("--baseline", help="DPT-head model to compare with when --checkpoint is an MoE model folder")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch's default)")
    parser.add_argument("--figures", type=int, default=3, help="scenes that get a PNG figure")
    parser.add_argument("--out", type=Path, default=None, help="report folder (default reports/<protocol>)")
    add_backend_arguments(parser)
    args = parser.parse_args(argv)
    check_backend_arguments(parser, args)
    if args.protocol != "synthetic" and args.data_root is None:
        parser.error(f"--protocol {args.protocol} needs --data-root")
    if args.blur < 0 or args.motion_blur < 0:
        parser.error("--blur and --motion-blur are lengths in pixels: give values >= 0")
    if args.motion_blur > 0 and not P.MULTI_VIEW[args.protocol]:
        parser.error(f"--motion-blur follows each frame's motion to the next view: --protocol {args.protocol} has single images")
    args.out = args.out or Path("reports") / args.protocol
    return args


def load_models(args: argparse.Namespace) -> tuple[dict[str, VGGT | OnnxModel], list[str]]:
    """{"dpt": baseline, "moe": MoE model} (either may be absent) and descriptions for the report."""
    models: dict[str, VGGT | OnnxModel] = {}
    described: list[str] = []
    if args.backend == "onnxruntime":
        for path in args.onnx_model.split(","):
            model = onnx_model_from(args, path)
            name = model.config.depth_head
            if name in models:
                raise ValueError(f"--onnx-model lists two exports with a {name} depth head: give one MoE and one DPT export")
            models[name] = model
            described.append(f"{name}: {path} ({model.description}; {model.manifest.description})")
        return models, described

    def add(name: str, reference, **kwargs) -> None:
        model, description = load_any(reference, args.preset, moe_head=kwargs.get("moe_head"))
        models[name] = model
        described.append(f"{name}: {description}")

    if args.checkpoint is None:
        LOG.warning(DEMO_WARNING)
        add("moe", DEMO_MODEL_DIR)
        if (DEMO_BASELINE_DIR / CONFIG_FILE).exists():
            add("dpt", DEMO_BASELINE_DIR)
        return models, described
    path = resolve_path(args.checkpoint)
    ours = path.is_dir() and (path / CONFIG_FILE).exists()
    dpt_checkpoint = not ours or read_config(path)[0].depth_head == "dpt"  # the config says; add() loads the weights once
    if dpt_checkpoint and args.baseline and not args.moe_head:
        # Both would be the "dpt" system, and the baseline would silently replace the checkpoint.
        raise ValueError(f"--checkpoint {args.checkpoint} has a DPT depth head: --baseline compares an MoE model with a DPT one; "
                         "score two DPT models in two runs (without --baseline)")
    add("dpt" if dpt_checkpoint else "moe", path)
    if args.moe_head:
        add("moe", path, moe_head=args.moe_head)
    if args.baseline:
        add("dpt", args.baseline)
    return models, described


def blur_condition(args: argparse.Namespace) -> BlurCondition:
    return BlurCondition(sigma=args.blur, motion=args.motion_blur)


def windows(args: argparse.Namespace, target_width: int):
    blur = blur_condition(args)
    if args.protocol == "synthetic":
        yield from P.synthetic_windows(P.SyntheticProtocol(scenes=args.scenes, frames=args.frames, style=args.style, world=args.world,
                                                          seed0=args.seed0), target_width, blur)
    elif args.protocol in ("7scenes", "nrgbd"):
        yield from P.multiview_windows(args.protocol, args.data_root, args.density, target_width, blur)
    else:
        yield from P.monocular_windows(args.protocol, args.data_root, target_width, args.blur)


def fingerprint(args: argparse.Namespace, descriptions: list[str], systems: list[str]) -> str:
    """What makes per-scene results reusable: same models, same systems scored (a new fusion adds
    one) and same protocol settings."""
    keys = {k: str(v) for k, v in vars(args).items() if k not in ("out", "figures", "max_scenes", "threads", "device")}
    return hashlib.sha256(json.dumps([keys, descriptions, systems], sort_keys=True).encode()).hexdigest()[:16]


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="[%(name)s] %(levelname)s: %(message)s")
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    try:
        models, descriptions = load_models(args)
        widths = {m.config.img_size for m in models.values()}
        if len(widths) != 1:
            raise ValueError(f"the models expect different input widths {sorted(widths)}: compare models of one resolution")
        evaluator = Evaluator(models, args.device, args.precision)
        out = args.out
        scenes_dir = out / "scenes"
        scenes_dir.mkdir(parents=True, exist_ok=True)
        run_id = fingerprint(args, descriptions, evaluator.systems)
        run_file = out / "run.json"
        if run_file.exists() and json.loads(run_file.read_text()).get("fingerprint") != run_id:
            raise ValueError(f"{out} holds results of another run (other models, systems or settings): choose another --out or delete it")
        run_file.write_text(json.dumps({"fingerprint": run_id, "models": descriptions}, indent=2) + "\n")
        per_scene: dict[str, dict[str, dict[str, float]]] = {}
        node_filter = FilterConfig(edge_test=args.filter_edge_test)
        figures: list[str] = []
        total = args.scenes if args.protocol == "synthetic" else None
        progress = Progress(total or 0, 0, 1) if total else None
        frames_seen = 0
        for index, window in enumerate(windows(args, widths.pop())):
            if args.max_scenes and index >= args.max_scenes:
                break
            stem = window.name.replace("/", "_")
            cached = scenes_dir / f"{stem}.json"
            figure = out / f"figure_{stem}.png"
            scene = json.loads(cached.read_text()) if cached.exists() else {}
            if scene.get("metrics") == SCORED and (index >= args.figures or figure.exists()):
                per_scene[window.name] = scene["systems"]
            else:
                truth = window.depth if args.oracle and P.MULTI_VIEW[args.protocol] else None
                predictions = evaluator.predict(window.images, truth)
                points = P.RECONSTRUCTION_POINTS.get(args.protocol, 0)
                per_scene[window.name] = {
                    name: score_window(window, pred, P.MULTI_VIEW[args.protocol], points, node_filter) for name, pred in predictions.items()
                }
                cached.write_text(json.dumps({"metrics": SCORED, "systems": per_scene[window.name]}, indent=2) + "\n")
                if index < args.figures:
                    scene_figure(window, predictions, figure)
            if figure.exists():
                figures.append(figure.name)
            frames_seen += len(window.images)
            if progress:
                progress.update(index, {"frames": frames_seen})
            else:
                LOG.info("scene %d: %s", index + 1, window.name)
    except (CheckpointError, DatasetError, ExportError, BackendUnavailable, FileNotFoundError, ValueError) as exc:
        LOG.error("%s", exc)
        return 2
    if not per_scene:
        LOG.error("no scenes were evaluated: check --data-root and the protocol")
        return 2
    meta = {
        "protocol": args.protocol if args.protocol not in ("7scenes", "nrgbd") else f"{args.protocol} ({args.density})",
        "models": "; ".join(descriptions),
        "device": f"{evaluator.torch_device} {str(evaluator.dtype).removeprefix('torch.')}",
        "condition": blur_condition(args).describe(),
        "scenes": len(per_scene),
        "frames": frames_seen,
        "notes": "metrics per frame after a per-image median scale fit, averaged per scene, then over scenes; "
        f"published_*: after moe3d_node's default filter with filter.edge_test {args.filter_edge_test}"
        + (f"; Acc/Comp/NC on {P.RECONSTRUCTION_POINTS[args.protocol]} random corresponding points per window"
           if args.protocol in P.RECONSTRUCTION_POINTS else ""),
    }
    result = write_report(out, meta, per_scene, evaluator.speed_summary(), figures)
    print((out / "report.md").read_text())
    if result["ratio_to_dpt"]:
        for system, values in result["ratio_to_dpt"].items():
            shown = ", ".join(f"{k} x{v:.3f}" for k, v in values.items() if k in ("abs_rel", "boundary_f1", "mixed_pixel_ratio", "flying_ratio", "acc_mean"))
            print(f"{system} / dpt: {shown}")
    print(f"report: {out / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
