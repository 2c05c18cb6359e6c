"""Typed size knobs of the VGGT architecture, with named presets.

Every number that changes a parameter shape lives here, so a checkpoint's shapes follow from its
config alone. Configs are frozen dataclasses and round-trip through plain dicts (JSON).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

HEAD_NAMES = ("camera", "depth", "point")
DEPTH_HEADS = ("dpt", "moe")


@dataclass(frozen=True)
class EncoderConfig:
    """DINOv2-style ViT that encodes each frame on its own (width = VGGTConfig.embed_dim)."""

    depth: int = 24
    num_heads: int = 16
    mlp_ratio: float = 4.0
    num_register_tokens: int = 4
    pos_embed_grid: int = 37  # the pretraining grid: 518 / 14
    layerscale_init: float = 1.0
    conv_stem: int = 0  # > 0: two 3x3 convs of this width before the patch embedding (0: VGGT's linear patches)


@dataclass(frozen=True)
class AggregatorConfig:
    """Alternating frame/global attention over the encoded tokens."""

    depth: int = 24  # number of (frame block, global block) steps
    num_heads: int = 16
    mlp_ratio: float = 4.0
    num_register_tokens: int = 4
    rope_base: float = 100.0
    layerscale_init: float = 0.01


@dataclass(frozen=True)
class CameraHeadConfig:
    """Iterative pose refinement on the camera token of the last aggregator step."""

    trunk_depth: int = 4
    num_heads: int = 16
    mlp_ratio: float = 4.0
    num_iterations: int = 4
    layerscale_init: float = 0.01


@dataclass(frozen=True)
class DPTConfig:
    """Dense prediction head shared by the depth and point heads."""

    features: int = 256
    out_channels: tuple[int, int, int, int] = (256, 512, 1024, 1024)
    intermediate_layers: tuple[int, int, int, int] = (4, 11, 17, 23)
    hidden_channels: int = 32  # width of the last 3x3 conv before the 1x1 output conv
    image_skip: int = 0  # > 0: a conv path from the image at full, 1/2 and 1/4 resolution (widths 1, 2, 4 x this) into the output stage
    frames_chunk_size: int = 8  # frames per head call: bounds activation memory


FUSIONS = ("winner", "surface", "mean")  # how the MoE head's experts become one depth (model.heads.moe_head.fuse)


@dataclass(frozen=True)
class MoEConfig:
    """Mixture-of-experts depth head: K experts on the shared DPT pyramid and a per-pixel gate."""

    num_experts: int = 4
    scope: str = "output"  # what each expert owns: "output" convolutions, "fusion" (refinenet1 too), or "density" (one mixture-density last layer)
    temperature: float = 1.0  # gate softmax temperature
    gate_hidden: int = 32
    fusion: str = "winner"  # inference: "winner" (highest-weight expert), "surface" (the winner's surface) or "mean" (mixture mean)
    gate_layers: int = 1  # 3x3 conv layers of the gate before its 1x1 output
    gate_image: bool = False  # the gate also reads the input image, to place its switch on the pixel edge

    def __post_init__(self) -> None:
        if self.num_experts < 1:
            raise ValueError("moe.num_experts must be at least 1")
        if self.scope not in ("output", "fusion", "density"):
            raise ValueError(f"moe.scope {self.scope!r} unknown (use 'output', 'fusion' or 'density')")
        if self.scope == "density" and self.gate_image:
            raise ValueError("moe.gate_image: the 'density' scope has no gate network (its weights come from the last layer); set it false")
        if self.fusion not in FUSIONS:
            raise ValueError(f"moe.fusion {self.fusion!r} unknown (use one of {FUSIONS})")
        if self.temperature <= 0:
            raise ValueError("moe.temperature must be positive")
        if self.gate_layers < 1:
            raise ValueError("moe.gate_layers must be at least 1")


@dataclass(frozen=True)
class VGGTConfig:
    """The whole model. `heads` lists the heads that are built (the track head never is);
    `depth_head` picks the plain DPT depth head or the MoE head."""

    img_size: int = 518
    patch_size: int = 14
    embed_dim: int = 1024
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    aggregator: AggregatorConfig = field(default_factory=AggregatorConfig)
    camera_head: CameraHeadConfig = field(default_factory=CameraHeadConfig)
    dpt: DPTConfig = field(default_factory=DPTConfig)
    heads: tuple[str, ...] = ("camera", "depth")
    depth_head: str = "dpt"
    moe: MoEConfig = field(default_factory=MoEConfig)

    def __post_init__(self) -> None:
        problems = []
        unknown = [h for h in self.heads if h not in HEAD_NAMES]
        if unknown:
            problems.append(f"heads {unknown} unknown (choose from {HEAD_NAMES})")
        if not self.heads:
            problems.append("heads is empty")
        if self.depth_head not in DEPTH_HEADS:
            problems.append(f"depth_head {self.depth_head!r} unknown (choose from {DEPTH_HEADS})")
        if self.embed_dim % self.encoder.num_heads or self.embed_dim % self.aggregator.num_heads:
            problems.append("embed_dim must be divisible by encoder and aggregator num_heads")
        if (self.embed_dim // self.aggregator.num_heads) % 4:
            problems.append("aggregator head dim must be divisible by 4 (2-D RoPE)")
        if (2 * self.embed_dim) % self.camera_head.num_heads:
            problems.append("2 * embed_dim must be divisible by camera_head.num_heads")
        bad_layers = [i for i in self.dpt.intermediate_layers if not 0 <= i < self.aggregator.depth]
        if bad_layers:
            problems.append(f"dpt.intermediate_layers {bad_layers} outside 0..{self.aggregator.depth - 1}")
        if any(c % 4 for c in self.dpt.out_channels) or self.dpt.features % 8:
            problems.append("dpt.out_channels must be multiples of 4 and dpt.features of 8")
        if self.img_size % self.patch_size:
            problems.append("img_size must be a multiple of patch_size")
        if problems:
            raise ValueError("invalid VGGTConfig: " + "; ".join(problems))

    @property
    def head_dim_in(self) -> int:
        """Width of the aggregated tokens the heads read (frame and global outputs concatenated)."""
        return 2 * self.embed_dim

    def layers_for(self, heads: tuple[str, ...]) -> tuple[int, ...]:
        """Aggregator steps whose outputs the given heads read."""
        layers: set[int] = set()
        if "camera" in heads:
            layers.add(self.aggregator.depth - 1)
        if "depth" in heads or "point" in heads:
            layers.update(self.dpt.intermediate_layers)
        return tuple(sorted(layers))

    def with_heads(self, heads: tuple[str, ...]) -> "VGGTConfig":
        return dataclasses.replace(self, heads=tuple(heads))

    def with_moe(self, moe: MoEConfig | None = None) -> "VGGTConfig":
        """The same architecture with the MoE depth head (default MoEConfig when None)."""
        return dataclasses.replace(self, depth_head="moe", moe=moe or MoEConfig())

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "VGGTConfig":
        """Inverse of to_dict; unknown keys are an error so a typo never goes unnoticed."""
        return dataclass_from_dict(cls, data, "config")


def dataclass_from_dict(cls: type, data: Any, where: str) -> Any:
    """Build dataclass `cls` from a plain mapping (JSON/YAML), recursing into fields whose default
    is itself a dataclass; lists become tuples. Unknown keys and bad values raise ValueError
    naming where they are, so a typo never goes unnoticed."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; expected some of {sorted(fields)}")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        factory = fields[name].default_factory
        default = factory() if factory is not dataclasses.MISSING else None
        if dataclasses.is_dataclass(default):
            kwargs[name] = dataclass_from_dict(type(default), value, f"{where}.{name}")
        elif isinstance(value, list):
            kwargs[name] = tuple(value)
        else:
            kwargs[name] = value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: {exc}") from exc


def vggt_1b() -> VGGTConfig:
    """The published facebook/VGGT-1B architecture (camera + depth heads built)."""
    return VGGTConfig()


def tiny() -> VGGTConfig:
    """The shrunken configuration of the shared parity fixture: same key patterns, ~1M params."""
    return VGGTConfig(
        embed_dim=64,
        encoder=EncoderConfig(depth=2, num_heads=2),
        aggregator=AggregatorConfig(depth=4, num_heads=2),
        camera_head=CameraHeadConfig(trunk_depth=1, num_heads=4),
        dpt=DPTConfig(features=16, out_channels=(8, 16, 32, 32), intermediate_layers=(0, 1, 2, 3)),
    )


def demo() -> VGGTConfig:
    """The bundled demo model: VGGT's architecture at about 1/450 of its size (2.7 M parameters),
    224 px wide input, small enough to train on two CPU cores on the synthetic scenes. Patches of
    7 px (VGGT: 14) give a 24x32 token grid at 168x224. Two additions that VGGT-1B does not have
    (its checkpoint loads unchanged): a conv stem before the patch embedding and an image path
    into the depth head's output stage, so that edges come from pixels, not from the patch grid;
    and layer scales that start at 1 (VGGT's 0.01 suits fine-tuning from DINOv2: trained from
    scratch, the demo's aggregator stayed asleep at 0.01)."""
    return VGGTConfig(
        img_size=224,
        patch_size=7,
        embed_dim=96,
        encoder=EncoderConfig(depth=3, num_heads=4, pos_embed_grid=32, conv_stem=16),
        aggregator=AggregatorConfig(depth=4, num_heads=4, layerscale_init=1.0),
        camera_head=CameraHeadConfig(trunk_depth=1, num_heads=4, layerscale_init=1.0),
        dpt=DPTConfig(features=48, out_channels=(24, 48, 96, 96), intermediate_layers=(0, 1, 2, 3), hidden_channels=16,
                      image_skip=16),
    )


PRESETS = {"vggt_1b": vggt_1b, "tiny": tiny, "demo": demo}


def preset(name: str) -> VGGTConfig:
    try:
        return PRESETS[name]()
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}") from None
