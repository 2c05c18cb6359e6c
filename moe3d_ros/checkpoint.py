"""Checkpoint loading and saving without unpickling anything but tensors.

Two kinds of files:
- the published VGGT checkpoint (`model.pt`, a plain state_dict, or `.safetensors`), loaded
  with an exact key and shape check into a model built from a preset;
- our own checkpoints: a folder with `model.safetensors` and `config.json` (the model config
  plus free-form metadata), enough to rebuild the model without knowing its preset.
"""
from __future__ import annotations

import json
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .model import VGGT, VGGTConfig

FORMAT_NAME = "moe3d_ros"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
# Top-level prefixes of head weights in the published checkpoint; a head that is not built
# has its keys dropped by name (the track head is never built).
HEAD_PREFIXES = {"camera": "camera_head.", "depth": "depth_head.", "point": "point_head.", "track": "track_head."}
_HF_REPO = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used; the message names the file and what is wrong."""


@dataclass
class LoadReport:
    path: str
    loaded: int
    dropped: dict[str, list[str]] = field(default_factory=dict)  # head -> keys not loaded

    def summary(self) -> str:
        text = f"loaded {self.loaded} tensors from {self.path}"
        for head, keys in self.dropped.items():
            text += f"; dropped {len(keys)} keys of the {head} head (not built)"
        return text


def resolve_path(reference: str | Path) -> Path:
    """A local file, or `org/name[:file]` from the Hugging Face cache when huggingface_hub is installed."""
    path = Path(reference).expanduser()
    if path.exists():
        return path
    text = str(reference)
    repo, _, filename = text.partition(":")
    if _HF_REPO.match(repo):
        try:
            from huggingface_hub import hf_hub_download
        except ImportError:
            raise CheckpointError(
                f"checkpoint {text!r} is not a local file and huggingface_hub is not installed; "
                "download the file and pass its path"
            ) from None
        try:
            return Path(hf_hub_download(repo, filename or "model.pt"))
        except Exception as exc:  # network, auth, offline cache miss: all end the same way
            raise CheckpointError(f"could not get {filename or 'model.pt'} of {repo} from Hugging Face: {exc}") from exc
    raise CheckpointError(f"checkpoint {text!r} does not exist")


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Tensors of a .pt/.pth/.bin (weights_only unpickling) or .safetensors file, on the CPU."""
    path = resolve_path(path)
    if path.is_dir():
        path = path / WEIGHTS_FILE
        if not path.exists():
            raise CheckpointError(f"{path.parent} is a folder without {WEIGHTS_FILE}")
    if path.suffix == ".safetensors":
        state = _read_safetensors(path)
    elif path.suffix in (".pt", ".pth", ".bin"):
        state = _read_torch(path)
    else:
        raise CheckpointError(f"{path}: unknown checkpoint type {path.suffix!r} (use .pt, .pth, .bin or .safetensors)")
    if not isinstance(state, dict) or not state:
        raise CheckpointError(f"{path}: expected a non-empty state_dict (a mapping of names to tensors)")
    not_tensors = [k for k, v in state.items() if not isinstance(v, Tensor)]
    if not_tensors:
        raise CheckpointError(f"{path}: not a plain state_dict; entries that are not tensors: {not_tensors[:5]}")
    return state


def _read_safetensors(path: Path) -> dict[str, Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:  # SafetensorError, OSError on truncated data, JSON errors in the header
        raise CheckpointError(f"{path}: corrupt or truncated safetensors file ({exc})") from exc


def _read_torch(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path}: refused to load: its pickle asks for objects other than tensors, which could run "
            f"arbitrary code ({str(exc).splitlines()[0]}). Use a plain state_dict or a .safetensors file."
        ) from exc
    except RuntimeError as exc:
        if "mmap" in str(exc):  # old (non-zip) serialisation cannot be memory-mapped
            try:
                return torch.load(path, map_location="cpu", weights_only=True)
            except pickle.UnpicklingError as inner:
                raise CheckpointError(f"{path}: refused to load: {str(inner).splitlines()[0]}") from inner
            except Exception as inner:
                raise CheckpointError(f"{path}: corrupt or truncated checkpoint ({inner})") from inner
        raise CheckpointError(f"{path}: corrupt or truncated checkpoint ({exc})") from exc
    except (EOFError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: corrupt or truncated checkpoint ({exc})") from exc


def match_state_dict(model: nn.Module, state: dict[str, Tensor], path: str, built_heads: tuple[str, ...]) -> LoadReport:
    """Check `state` against the model: exact keys and shapes, except heads that are not built."""
    expected = model.state_dict()
    dropped: dict[str, list[str]] = {}
    for head, prefix in HEAD_PREFIXES.items():
        if head in built_heads:
            continue
        keys = [k for k in state if k.startswith(prefix)]
        if keys:
            dropped[head] = keys
    ignored = {k for keys in dropped.values() for k in keys}
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected and k not in ignored]
    mis_shaped = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys: {_listing(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys: {_listing(unexpected)}")
    if mis_shaped:
        problems.append(f"{len(mis_shaped)} keys with other shapes: {_listing(mis_shaped)}")
    if problems:
        raise CheckpointError(f"{path} does not fit the model: " + "; ".join(problems))
    for key in ignored:
        del state[key]
    return LoadReport(path=path, loaded=len(state), dropped=dropped)


def _listing(items: list[str], limit: int = 8) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


def load_vggt_weights(model: VGGT, path: str | Path) -> LoadReport:
    """Load a published VGGT checkpoint into `model` (built from a preset), strictly."""
    state = read_state_dict(path)
    report = match_state_dict(model, state, str(path), model.config.heads)
    model.load_state_dict(state, strict=True, assign=_on_meta(model))
    return report


def _on_meta(model: nn.Module) -> bool:
    return any(p.is_meta for p in model.parameters())


def save_model(model: VGGT, folder: str | Path, metadata: dict[str, Any] | None = None) -> Path:
    """Write `model.safetensors` + `config.json` into `folder` (created)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(tensors, str(folder / WEIGHTS_FILE))
    config = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "model": model.config.to_dict(),
        "metadata": metadata or {},
    }
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    return folder


def read_config(folder: str | Path) -> tuple[VGGTConfig, dict[str, Any]]:
    """Model config and metadata of one of our checkpoint folders."""
    path = Path(folder) / CONFIG_FILE
    if not path.exists():
        raise CheckpointError(f"{path} does not exist (our checkpoints are a folder with {WEIGHTS_FILE} and {CONFIG_FILE})")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{path}: not a {FORMAT_NAME} checkpoint config (missing \"format\": \"{FORMAT_NAME}\")")
    if data.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: format_version {data.get('format_version')} is not supported (expected {FORMAT_VERSION})")
    try:
        config = VGGTConfig.from_dict(data["model"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: invalid model config: {exc}") from exc
    return config, data.get("metadata", {})


def load_model(folder: str | Path, device: str | torch.device = "cpu") -> tuple[VGGT, dict[str, Any]]:
    """Rebuild one of our checkpoints: returns the model in eval mode and its metadata."""
    folder = resolve_path(folder)
    config, metadata = read_config(folder)
    with torch.device("meta"):
        model = VGGT(config)
    load_vggt_weights(model, folder / WEIGHTS_FILE)
    return model.to(device).eval(), metadata


def load_any(
    reference: str | Path, preset_name: str = "vggt_1b", heads: tuple[str, ...] = ("camera", "depth")
) -> tuple[VGGT, str]:
    """One of our checkpoint folders, or a published VGGT file loaded into `preset_name`.

    Returns the model (CPU, eval mode) and a one-line description for logs.
    """
    from .model import preset

    path = resolve_path(reference)
    if path.is_dir() and (path / CONFIG_FILE).exists():
        model, metadata = load_model(path)
        return model, f"{path} ({metadata.get('description', 'moe3d_ros checkpoint')})"
    with torch.device("meta"):
        model = VGGT(preset(preset_name).with_heads(heads))
    report = load_vggt_weights(model, path)
    return model.eval(), f"{preset_name}: {report.summary()}"
