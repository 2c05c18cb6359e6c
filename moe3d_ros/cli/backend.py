"""The --backend, --onnx-model and --onnx-providers options that moe3d-infer and moe3d-eval share."""
from __future__ import annotations

import argparse

from ..inference.onnx_backend import BACKENDS, OnnxModel


def add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", default="torch", choices=BACKENDS,
                        help="torch (the checkpoint through PyTorch) or onnxruntime (--onnx-model, written by moe3d-export)")
    parser.add_argument("--onnx-model", help="the .onnx file (or its .json) written by moe3d-export; for --backend "
                        "onnxruntime (moe3d-eval: an MoE and a DPT export, comma-separated, to compare them)")
    parser.add_argument("--onnx-providers", default="",
                        help="ONNX Runtime execution providers in order, comma-separated (default: TensorRT, CUDA, CPU, "
                             "whichever are installed)")


def check_backend_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.backend == "onnxruntime" and not args.onnx_model:
        parser.error("--backend onnxruntime needs --onnx-model (export one with moe3d-export)")
    if args.backend == "torch" and args.onnx_model:
        parser.error("--onnx-model is for --backend onnxruntime")


def onnx_model_from(args: argparse.Namespace, path: str | None = None) -> OnnxModel:
    """The export at `path` (default: --onnx-model) with the providers and threads the options ask for."""
    providers = [name.strip() for name in args.onnx_providers.split(",") if name.strip()]
    return OnnxModel(path or args.onnx_model, providers, threads=args.threads)
