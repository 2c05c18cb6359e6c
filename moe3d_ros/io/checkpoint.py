"""Checkpoint loading and saving without unpickling anything but tensors.

Two kinds of files:
- the published VGGT checkpoint (`model.pt`, a plain state_dict, or `.safetensors`), loaded
  with an exact key and shape check into a model built from a preset;
- our own checkpoints: a folder with `model.safetensors` and `config.json` (the model config
  plus free-form metadata), enough to rebuild the model without knowing its preset.
"""
from __future__ import annotations

import dataclasses
import json
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn

from ..model import VGGT, VGGTConfig
from ..model.heads import DPTHead
from ..model.heads.moe_head import MoEDepthHead

FORMAT_NAME = "moe3d_ros"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
MODEL_CONTENTS = "model"
HEAD_CONTENTS = "depth_head"
DEPTH_PREFIX = "depth_head."
# Top-level prefixes of head weights in the published checkpoint; a head that is not built
# has its keys dropped by name (the track head is never built).
HEAD_PREFIXES = {"camera": "camera_head.", "depth": "depth_head.", "point": "point_head.", "track": "track_head."}
# The small model trained on synthetic scenes that ships with the package (see docs/demo-model.md).
DEMO_MODEL_DIR = Path(__file__).resolve().parents[1] / "models" / "demo"
# Its plain-DPT twin, trained first (the "VGGT" baseline of the demo), for side-by-side evaluation.
DEMO_BASELINE_DIR = Path(__file__).resolve().parents[1] / "models" / "demo_dpt"
DEMO_WARNING = (
    "USING THE BUNDLED SYNTHETIC DEMO MODEL: a small network trained on generated scenes, not VGGT-1B. "
    "Depth on real images will be poor; pass checkpoint:=/path/to/VGGT-1B/model.pt for real use."
)
_HF_REPO = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used; the message names the file and what is wrong."""


@dataclass
class LoadReport:
    path: str
    loaded: int
    dropped: dict[str, list[str]] = field(default_factory=dict)  # head -> keys not loaded
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        text = f"loaded {self.loaded} tensors from {self.path}"
        for head, keys in self.dropped.items():
            text += f"; dropped {len(keys)} keys of the {head} head (not built)"
        return "; ".join([text, *self.notes])


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
        raise CheckpointError(f"{path}: corrupt or truncated safetensors file ({_why(exc)})") from exc


def _why(exc: BaseException) -> str:
    """The first line of an error, or its type when it has no text (torch raises some bare)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _read_torch(path: Path) -> Any:
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: the file is empty (0 bytes); download it again")
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
                raise CheckpointError(f"{path}: corrupt or truncated checkpoint ({_why(inner)})") from inner
        raise CheckpointError(f"{path}: corrupt or truncated checkpoint ({_why(exc)})") from exc
    except Exception as exc:  # a malformed archive or pickle surfaces as any error type
        raise CheckpointError(f"{path}: corrupt or truncated checkpoint ({_why(exc)})") from exc


def match_state_dict(expected: dict[str, Tensor], state: dict[str, Tensor], path: str, built_heads: tuple[str, ...]) -> LoadReport:
    """Check `state` against expected tensors: exact keys and shapes, except heads not built.

    Keys of heads that are not built are removed from `state` and listed in the report.
    """
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
    """Load a VGGT checkpoint into `model` (built from a preset or config), strictly.

    When the model has an MoE depth head and the file a plain DPT depth head (the published
    checkpoint), the MoE head is initialised from that DPT head: every expert a copy, the gate
    uniform, so the model starts out exactly as the published one.
    """
    state = read_state_dict(path)
    expected = model.state_dict()
    moe_head = model.depth_head if isinstance(model.depth_head, MoEDepthHead) else None
    moe_keys = tuple(DEPTH_PREFIX + part for part in ("experts.", "gate.", "density."))
    from_dpt = moe_head is not None and not any(k.startswith(moe_keys) for k in state)
    if not from_dpt:
        report = match_state_dict(expected, state, str(path), model.config.heads)
        model.load_state_dict(state, strict=True, assign=_on_meta(model))
        model.aggregator.reset_constants()  # not in the file (non-persistent): still on meta after assign
        return report
    dpt_state = {k[len(DEPTH_PREFIX) :]: state.pop(k) for k in list(state) if k.startswith(DEPTH_PREFIX)}
    with torch.device("meta"):
        dpt_expected = DPTHead(model.config, output_dim=2).state_dict()
    match_state_dict(dpt_expected, dpt_state, f"{path} (depth head)", ("depth",))
    rest = {k: v for k, v in expected.items() if not k.startswith(DEPTH_PREFIX)}
    report = match_state_dict(rest, state, str(path), model.config.heads)
    model.load_state_dict(state, strict=False, assign=_on_meta(model))
    model.aggregator.reset_constants()
    if any(p.is_meta for p in moe_head.parameters()):
        moe_head.to_empty(device="cpu")
        if moe_head.gate is not None:
            moe_head.gate.reset_parameters()
    moe_head.init_from_dpt(dpt_state)
    report.loaded += len(dpt_state)
    report.notes.append(f"MoE depth head ({moe_head.num_experts} components, {moe_head.scope} scope) initialised from the file's DPT depth head")
    return report


def load_head_weights(model: VGGT, folder: str | Path) -> LoadReport:
    """Load depth-head weights saved with save_model(..., head_only=True) on top of `model`.

    The folder's model config must describe the same depth head as `model`'s.
    """
    folder = resolve_path(folder)
    config, _ = read_config(folder, expect_contents=HEAD_CONTENTS)
    if (config.depth_head, config.moe, config.dpt) != (model.config.depth_head, model.config.moe, model.config.dpt):
        raise CheckpointError(
            f"{folder}: its depth head ({config.depth_head}, {config.moe}) differs from the model's "
            f"({model.config.depth_head}, {model.config.moe})"
        )
    state = read_state_dict(folder / WEIGHTS_FILE)
    expected = {k: v for k, v in model.state_dict().items() if k.startswith(DEPTH_PREFIX)}
    report = match_state_dict(expected, state, str(folder), model.config.heads)
    model.load_state_dict(state, strict=False)
    return report


def _on_meta(model: nn.Module) -> bool:
    return any(p.is_meta for p in model.parameters())


def save_model(model: VGGT, folder: str | Path, metadata: dict[str, Any] | None = None, head_only: bool = False) -> Path:
    """Write `model.safetensors` + `config.json` into `folder` (created).

    head_only=True writes just the depth head (e.g. a fine-tuned MoE head, a few MB) to be
    loaded with load_head_weights on top of a VGGT checkpoint.
    """
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = model.state_dict()
    if head_only:
        state = {k: v for k, v in state.items() if k.startswith(DEPTH_PREFIX)}
    tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    save_file(tensors, str(folder / WEIGHTS_FILE))
    config = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "contents": HEAD_CONTENTS if head_only else MODEL_CONTENTS,
        "model": model.config.to_dict(),
        "metadata": metadata or {},
    }
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    return folder


def read_config(folder: str | Path, expect_contents: str = MODEL_CONTENTS) -> tuple[VGGTConfig, dict[str, Any]]:
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
    contents = data.get("contents", MODEL_CONTENTS)
    if contents != expect_contents:
        hint = "load it on top of a VGGT checkpoint (--moe-head)" if contents == HEAD_CONTENTS else "load it as a model"
        raise CheckpointError(f"{path}: holds {contents!r} weights, not {expect_contents!r}: {hint}")
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
    reference: str | Path,
    preset_name: str = "vggt_1b",
    heads: tuple[str, ...] = ("camera", "depth"),
    moe_head: str | Path | None = None,
) -> tuple[VGGT, str]:
    """One of our checkpoint folders, or a published VGGT file loaded into `preset_name`,
    optionally with a depth head saved by save_model(head_only=True) on top.

    Returns the model (CPU, eval mode) and a one-line description for logs.
    """
    from ..model import preset

    path = resolve_path(reference)
    if path.is_dir() and not (path / CONFIG_FILE).exists():
        raise CheckpointError(f"{path} is a folder without {CONFIG_FILE}: our checkpoints are a folder with {WEIGHTS_FILE} "
                              f"and {CONFIG_FILE}; for a published VGGT file pass the .pt or .safetensors file itself")
    if path.is_dir():
        model, metadata = load_model(path)
        description = f"{path} ({metadata.get('description', 'moe3d_ros checkpoint')})"
    else:
        config = preset(preset_name).with_heads(heads)
        if moe_head is not None:
            head_config, _ = read_config(resolve_path(moe_head), expect_contents=HEAD_CONTENTS)
            config = dataclasses.replace(config, depth_head=head_config.depth_head, moe=head_config.moe)
        with torch.device("meta"):
            model = VGGT(config)
        description = f"{preset_name}: {load_vggt_weights(model, path).summary()}"
    if moe_head is not None:
        description += f"; depth head from {load_head_weights(model, moe_head).path}"
    return model.eval(), description


def load_for_inference(
    checkpoint: str, preset_name: str = "vggt_1b", moe_head: str = "", warn: Callable[[str], None] | None = None
) -> tuple[VGGT, str]:
    """`checkpoint` as load_any takes it, or '' for the bundled demo model (announced through `warn`)."""
    if checkpoint:
        return load_any(checkpoint, preset_name, moe_head=moe_head or None)
    if not (DEMO_MODEL_DIR / CONFIG_FILE).exists():
        raise CheckpointError(f"no checkpoint given and the bundled demo model is missing ({DEMO_MODEL_DIR}); pass a checkpoint")
    if warn is not None:
        warn(DEMO_WARNING)
    model, description = load_any(DEMO_MODEL_DIR, moe_head=moe_head or None)
    return model, f"synthetic demo model ({description})"
