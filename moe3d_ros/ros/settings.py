"""The node's parameters: declared with descriptors, validated, gathered in NodeSettings.

Structural parameters (topics, model, device, window) are read-only after start-up; filter,
cloud, fusion and scale parameters can change at run time and are validated on every change.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType, SetParametersResult
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException, ParameterUninitializedException
from rclpy.node import Node
from rclpy.parameter import Parameter

from ..inference.onnx_backend import parse_provider_options
from ..intake.camera_model import is_rectified_topic
from ..model.config import FUSIONS
from ..outputs.filtering import EDGE_TESTS, FilterConfig


@dataclass(frozen=True)
class ParamSpec:
    default: Any
    kind: int
    description: str
    read_only: bool = True
    choices: tuple[str, ...] = ()
    min_value: float | None = None
    max_value: float | None = None


_T = ParameterType
SPECS: dict[str, ParamSpec] = {
    "image_topics": ParamSpec(["/camera/image_raw"], _T.PARAMETER_STRING_ARRAY,
                              "Image topics, one per camera; a topic ending in /compressed is read as CompressedImage"),
    "camera_info_topics": ParamSpec([""], _T.PARAMETER_STRING_ARRAY,
                                    "CameraInfo topic per camera; [''] (default) = the image topic's sibling 'camera_info'; "
                                    "'none' for a camera = use the model's predicted intrinsics"),
    "camera_names": ParamSpec([""], _T.PARAMETER_STRING_ARRAY,
                              "Output sub-namespace per camera; [''] (default) = derived from the image topic"),
    "images_rectified": ParamSpec([""], _T.PARAMETER_STRING_ARRAY,
                                  "Per camera: true (the images are rectified: CameraInfo P is their camera, D is not "
                                  "applied), false (raw: a non-zero D is undone before the model) or auto; [''] (default) = "
                                  "auto: true for image_rect* topics"),
    "compressed": ParamSpec(False, _T.PARAMETER_BOOL, "Read every image topic as sensor_msgs/CompressedImage"),
    "input_qos": ParamSpec("auto", _T.PARAMETER_STRING,
                           "Reliability of the image and CameraInfo subscriptions (depth 1): auto (reliable when every "
                           "publisher of the topic is reliable, else best effort; re-decided as publishers come and go), "
                           "sensor_data (best effort) or reliable; qos_overrides.<topic>.subscription.reliability wins",
                           choices=("auto", "sensor_data", "reliable")),
    "max_stamp_jump": ParamSpec(1.0, _T.PARAMETER_DOUBLE,
                                "A frame whose stamp jumps more than this against the camera's recent stamps and their "
                                "receive times is rejected; a clock reset is adopted after 0.5 s of consistent frames [s]",
                                min_value=0.001),
    "camera_info_tolerance": ParamSpec(1.0, _T.PARAMETER_DOUBLE,
                                       "A frame uses the CameraInfo of its stamp, or the newest older one at most this "
                                       "much older [s]", min_value=0.0),
    "reference_camera": ParamSpec(0, _T.PARAMETER_INTEGER, "Camera whose optical frame holds the cloud and poses", min_value=0),
    "window_size": ParamSpec(4, _T.PARAMETER_INTEGER, "Frames per model call: newest of every camera plus keyframes",
                             min_value=1, max_value=64),
    "keyframe_spacing": ParamSpec(0.5, _T.PARAMETER_DOUBLE, "Minimum stamp spacing between a camera's keyframes [s]", min_value=0.0),
    "stale_timeout": ParamSpec(2.0, _T.PARAMETER_DOUBLE, "A camera silent this long is left out of windows [s]", min_value=0.01),
    "checkpoint": ParamSpec("", _T.PARAMETER_STRING,
                            "Our checkpoint folder, a VGGT .pt/.safetensors file or org/name; '' = bundled demo model"),
    "preset": ParamSpec("vggt_1b", _T.PARAMETER_STRING, "Architecture of a published VGGT checkpoint", choices=("vggt_1b", "tiny")),
    "moe_head": ParamSpec("", _T.PARAMETER_STRING, "Depth-head checkpoint folder loaded on top of `checkpoint`"),
    "backend": ParamSpec("torch", _T.PARAMETER_STRING, "torch (the checkpoint through PyTorch) or onnxruntime (the model "
                         "onnx_model names, exported by moe3d-export)", choices=("torch", "onnxruntime")),
    "onnx_model": ParamSpec("", _T.PARAMETER_STRING, "The .onnx file (or its .json manifest) written by moe3d-export; for "
                            "backend onnxruntime, which then ignores checkpoint, preset, moe_head, device and precision"),
    "onnx_providers": ParamSpec([""], _T.PARAMETER_STRING_ARRAY,
                                "ONNX Runtime execution providers in order of preference, e.g. ['CUDAExecutionProvider', "
                                "'CPUExecutionProvider']; [''] (default) = TensorRT, CUDA, CPU, whichever are installed"),
    "onnx_provider_options": ParamSpec([""], _T.PARAMETER_STRING_ARRAY,
                                       "Options for the execution providers, one 'Provider:key=value' per entry, given "
                                       "to ONNX Runtime as is, e.g. ['TensorrtExecutionProvider:trt_fp16_enable=True']; "
                                       "[''] (default) = none"),
    "device": ParamSpec("auto", _T.PARAMETER_STRING, "auto (CUDA when present), cpu, cuda or cuda:N"),
    "precision": ParamSpec("auto", _T.PARAMETER_STRING, "auto (bf16 on CUDA, fp32 on CPU), fp32, bf16 or fp16",
                           choices=("auto", "fp32", "bf16", "fp16")),
    "encoder_cache": ParamSpec(True, _T.PARAMETER_BOOL,
                               "Reuse each keyframe's encoder tokens in later windows (exact: the encoder sees one frame "
                               "at a time); keeps the tokens of up to 2 x window_size frames on the device"),
    "compile": ParamSpec(False, _T.PARAMETER_BOOL,
                         "torch.compile the forward; every window size is compiled at start-up for warm_up.image_size "
                         "(about a minute per size for vggt_1b on a GPU), the outputs match the plain forward"),
    "cuda_graph": ParamSpec(False, _T.PARAMETER_BOOL,
                            "Capture the forward in a CUDA graph per window size (at start-up for warm_up.image_size) "
                            "and replay it; CUDA only (elsewhere a log line and the plain forward)"),
    "device_preprocess": ParamSpec(True, _T.PARAMETER_BOOL, "Upload the 8-bit images and resize them on the model's device "
                                   "(false: resize on the CPU, upload floats)"),
    "device_postprocess": ParamSpec(True, _T.PARAMETER_BOOL,
                                    "Filter, unproject, colour and pack the cloud on the model's device, one copy of the "
                                    "final buffers to the host (false: the same on the host with NumPy, which a CPU device always uses: "
                                    "faster there)"),
    "pipeline": ParamSpec(True, _T.PARAMETER_BOOL, "Build and publish a window's messages in a second thread while the "
                          "next window runs on the device"),
    "warm_up.image_size": ParamSpec([640, 480], _T.PARAMETER_INTEGER_ARRAY,
                                    "Camera image width and height the forward is prepared for at start-up (compilation, "
                                    "graph capture, kernel selection) for every window size; [0, 0] = no warm-up. With backend "
                                    "onnxruntime the exported input size is checked against it at start-up"),
    "preprocess_mode": ParamSpec("crop", _T.PARAMETER_STRING, "crop or pad, as the reference preprocessing", choices=("crop", "pad")),
    "fusion": ParamSpec("winner", _T.PARAMETER_STRING, "MoE fusion: winner (sharp), surface (the winner where the "
                        "hypotheses differ by over 20%, else their mean) or mean", read_only=False,
                        choices=FUSIONS),
    "filter.min_confidence": ParamSpec(1.5, _T.PARAMETER_DOUBLE, "Drop pixels with model confidence below this (0 = off)",
                                       read_only=False, min_value=0.0),
    "filter.max_gate_entropy": ParamSpec(math.inf, _T.PARAMETER_DOUBLE, "Drop pixels whose MoE gate entropy exceeds this [nats] "
                                         "(inf = off, the default; 0.5 for a trained head whose gate decides)",
                                         read_only=False, min_value=0.0),
    "filter.min_expert_spread": ParamSpec(0.05, _T.PARAMETER_DOUBLE, "The gate-entropy test drops a pixel only where the experts' "
                                          "depths differ by more than this (max / min - 1)", read_only=False, min_value=0.0),
    "filter.max_edge_jump": ParamSpec(0.05, _T.PARAMETER_DOUBLE, "Drop pixels whose depth jumps more than this to a neighbour "
                                      "(relative; inf = off)", read_only=False, min_value=0.0),
    "filter.edge_test": ParamSpec("jump", _T.PARAMETER_STRING, "Which pixels at a depth edge max_edge_jump drops: jump (both "
                                  "pixels of every step) or between (only a pixel between its 3x3 neighbours' nearest and "
                                  "farthest depth: a blend; a clean step is kept)", read_only=False, choices=EDGE_TESTS),
    "filter.min_depth": ParamSpec(0.0, _T.PARAMETER_DOUBLE, "Drop depth below this (published units)", read_only=False, min_value=0.0),
    "filter.max_depth": ParamSpec(math.inf, _T.PARAMETER_DOUBLE, "Drop depth above this (published units)", read_only=False, min_value=0.0),
    "output_size": ParamSpec("input", _T.PARAMETER_STRING,
                             "Size of the depth, confidence and gating images: input (registered to the camera image: "
                             "its size and intrinsics, crop and resize undone) or model (the model's grid)",
                             choices=("input", "model")),
    "cloud.organized": ParamSpec(True, _T.PARAMETER_BOOL, "Organised cloud (filtered points NaN) or unorganised (dropped)",
                                 read_only=False),
    "cloud.decimation": ParamSpec(1, _T.PARAMETER_INTEGER, "Keep every n-th pixel in both directions", read_only=False,
                                  min_value=1, max_value=64),
    "output_reliability": ParamSpec("reliable", _T.PARAMETER_STRING, "QoS reliability of the outputs",
                                    choices=("reliable", "best_effort")),
    "scale.mode": ParamSpec("relative", _T.PARAMETER_STRING,
                            "relative (the first window's unit, kept), fixed (metres = scale.factor x each window's model "
                            "unit), depth (metric from scale.depth_topics) or odometry (metric from scale.odometry_topic); the "
                            "metric modes publish nothing until their first measurement",
                            choices=("relative", "fixed", "depth", "odometry")),
    "scale.factor": ParamSpec(1.0, _T.PARAMETER_DOUBLE, "Metres per model unit when scale.mode is fixed (each window's own "
                              "unit: the same images give the same metres in every run)", read_only=False, min_value=1e-9),
    "scale.publish_unscaled": ParamSpec(False, _T.PARAMETER_BOOL,
                                        "In scale.mode depth or odometry, also publish before the first scale measurement, in "
                                        "raw model units (for debugging only: a map fed these keeps them)", read_only=False),
    "scale.depth_topics": ParamSpec([""], _T.PARAMETER_STRING_ARRAY,
                                    "Metric depth registered to each camera's image (16UC1 mm or 32FC1 m; 0/NaN invalid), "
                                    "one per camera, '' = none; for scale.mode depth"),
    "scale.max_stamp_gap": ParamSpec(0.05, _T.PARAMETER_DOUBLE,
                                     "A depth image or odometry sample serves a frame within this many seconds of its stamp",
                                     min_value=0.0),
    "scale.odometry_topic": ParamSpec("", _T.PARAMETER_STRING, "nav_msgs/Odometry of the robot's base; for scale.mode odometry"),
    "scale.camera_in_base": ParamSpec([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0], _T.PARAMETER_DOUBLE_ARRAY,
                                      "The reference camera's optical frame in the odometry's base frame: x y z qx qy qz qw"),
    "scale.odometry_baseline": ParamSpec("images", _T.PARAMETER_STRING,
                                         "What the odometry's baselines are compared with: images (the camera's own "
                                         "translation from tracked features and the predicted depth, any model) or camera_head "
                                         "(the model's predicted poses)", choices=("images", "camera_head")),
    "scale.base_frame": ParamSpec("", _T.PARAMETER_STRING,
                                  "child_frame_id the odometry must carry: the frame scale.camera_in_base is given in; "
                                  "odometry of another frame is rejected (counted, in /diagnostics); '' = any"),
    "scale.min_baseline": ParamSpec(0.1, _T.PARAMETER_DOUBLE,
                                    "Odometry baselines shorter than this [m] are not used (standing still: the scale holds)",
                                    min_value=0.0),
    "diagnostics_period": ParamSpec(1.0, _T.PARAMETER_DOUBLE, "Seconds between /diagnostics messages", min_value=0.05),
}


@dataclass
class NodeSettings:
    image_topics: list[str]
    camera_info_topics: list[str | None]
    camera_names: list[str]
    images_rectified: list[bool]
    compressed: list[bool]
    input_qos: str
    max_stamp_jump: float
    camera_info_tolerance: float
    reference_camera: int
    window_size: int
    keyframe_spacing: float
    stale_timeout: float
    checkpoint: str
    preset: str
    moe_head: str
    backend: str
    onnx_model: str
    onnx_providers: list[str]
    onnx_provider_options: dict[str, dict[str, str]]
    device: str
    precision: str
    encoder_cache: bool
    compile: bool
    cuda_graph: bool
    device_preprocess: bool
    device_postprocess: bool
    pipeline: bool
    warm_up_image_size: tuple[int, ...]
    preprocess_mode: str
    fusion: str
    filter: FilterConfig
    output_size: str
    organized: bool
    decimation: int
    output_reliability: str
    scale_mode: str
    scale_factor: float
    scale_publish_unscaled: bool
    scale_depth_topics: list[str]
    scale_max_stamp_gap: float
    scale_odometry_topic: str
    scale_camera_in_base: tuple[float, ...]
    scale_min_baseline: float
    scale_odometry_baseline: str
    scale_base_frame: str
    diagnostics_period: float
    raw: dict[str, Any] = field(default_factory=dict)



_KIND_WORDS = {
    _T.PARAMETER_BOOL: ("true or false", "true"),
    _T.PARAMETER_INTEGER: ("an integer", "4"),
    _T.PARAMETER_DOUBLE: ("a number", "1.0"),
    _T.PARAMETER_STRING: ("a string", "value"),
    _T.PARAMETER_STRING_ARRAY: ("a list of strings", "\"['/camera/image_raw']\""),
    _T.PARAMETER_DOUBLE_ARRAY: ("a list of numbers", "[0.0,0.0,0.0,0.0,0.0,0.0,1.0]"),
    _T.PARAMETER_INTEGER_ARRAY: ("a list of integers", "[640,480]"),
}
ALWAYS_ALLOWED = ("use_sim_time", "start_type_description_service")


def declare(node: Node) -> None:
    """Declare every parameter with its descriptor; a value of the wrong type or out of range
    raises ValueError naming the parameter and the fix (one line, no traceback)."""
    for name, spec in SPECS.items():
        descriptor = ParameterDescriptor(name=name, type=spec.kind, description=spec.description, read_only=spec.read_only)
        if spec.choices:
            descriptor.additional_constraints = f"one of {', '.join(spec.choices)}"
        if spec.kind == _T.PARAMETER_INTEGER and spec.min_value is not None:
            descriptor.integer_range = [IntegerRange(from_value=int(spec.min_value), to_value=int(spec.max_value or 2**31 - 1), step=1)]
        if spec.kind == _T.PARAMETER_DOUBLE and spec.min_value is not None:
            descriptor.floating_point_range = [FloatingPointRange(from_value=float(spec.min_value), to_value=float(spec.max_value or math.inf), step=0.0)]
        given = _override(node, name)
        try:
            if spec.kind == _T.PARAMETER_DOUBLE and type(given) is int:  # `timeout: 2` in YAML means 2.0
                node.declare_parameter(name, float(given), descriptor, ignore_override=True)
            else:
                node.declare_parameter(name, spec.default, descriptor)
            value = node.get_parameter(name).value
        except (InvalidParameterTypeException, InvalidParameterValueException, ParameterUninitializedException) as exc:
            raise ValueError(_bad_value(name, spec, given)) from exc
        if spec.kind == _T.PARAMETER_STRING_ARRAY and not value:
            raise ValueError(_bad_value(name, spec, given))


def _override(node: Node, name: str) -> Any:
    """The value given for `name` on the command line or in a params file, or None."""
    parameter = getattr(node, "_parameter_overrides", {}).get(name)
    return None if parameter is None else parameter.value


def _bad_value(name: str, spec: ParamSpec, value: Any) -> str:
    words, example = _KIND_WORDS[spec.kind]
    problem = check_value(name, value) if isinstance(value, (int, float, str)) and not isinstance(value, bool) else None
    if problem is None or spec.kind == _T.PARAMETER_STRING_ARRAY:
        problem = f"{name} must be {words}, got {value!r}" if value not in (None, []) else f"{name} must be {words}, got an empty value"
        if spec.kind == _T.PARAMETER_STRING_ARRAY:
            problem += " (a non-empty list)"
    default = format_value(spec.default) if spec.default not in ("", [""]) else example
    return f"{problem}: set e.g. {name}:={default} (`ros2 param describe` or docs/node.md explains it)"


def format_value(value: Any) -> str:
    """A value as one writes it after `-p name:=`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and math.isinf(value):
        return ".inf"
    if isinstance(value, list):
        return '"[' + ", ".join(f"'{v}'" if isinstance(v, str) else str(v) for v in value) + ']"'
    return str(value)


def unknown_parameters(node: Node) -> list[str]:
    """Names given on the command line or in a params file that this node does not have
    (QoS overrides and rclpy's own parameters are known)."""
    given = getattr(node, "_parameter_overrides", {})
    return sorted(name for name in given if name not in SPECS and name not in ALWAYS_ALLOWED
                  and not name.startswith("qos_overrides."))


def topic_camera_name(topic: str, index: int) -> str:
    """'/front/image_raw' -> 'front'; '/image' -> 'camera_<index>'."""
    parts = [p for p in topic.split("/") if p]
    if parts and parts[-1] == "compressed":
        parts = parts[:-1]
    name = parts[-2] if len(parts) >= 2 else f"camera_{index}"
    return name.replace("-", "_")


def sibling_camera_info(topic: str) -> str:
    base = topic[: -len("/compressed")] if topic.endswith("/compressed") else topic
    head, _, _ = base.rpartition("/")
    return f"{head}/camera_info"


def check_value(name: str, value: Any) -> str | None:
    """Why `value` is not acceptable for parameter `name`, or None."""
    spec = SPECS[name]
    if isinstance(value, float) and math.isnan(value):
        return f"{name} must be a number, got nan"
    if spec.choices and value not in spec.choices:
        return f"{name} must be one of {', '.join(spec.choices)}, got {value!r}"
    if spec.min_value is not None and isinstance(value, (int, float)) and value < spec.min_value:
        return f"{name} must be >= {spec.min_value}, got {value}"
    if spec.max_value is not None and isinstance(value, (int, float)) and value > spec.max_value:
        return f"{name} must be <= {spec.max_value}, got {value}"
    return None


def read(node: Node) -> NodeSettings:
    """All parameters, validated; raises ValueError naming the parameter and what to fix."""
    raw = {name: node.get_parameter(name).value for name in SPECS}
    problems = [p for name, value in raw.items() if (p := check_value(name, value))]
    topics = [t for t in raw["image_topics"] if t]
    if not topics:
        problems.append("image_topics is empty: set e.g. image_topics:=\"['/camera/image_raw']\" (one image topic per camera)")
    count = len(topics)

    def per_camera(name: str) -> list[str]:
        values = list(raw[name])
        if values == [""]:
            return [""] * count
        if len(values) != count:
            problems.append(f"{name} has {len(values)} entries but image_topics has {count}")
            return [""] * count
        return values

    info = [None if v == "none" else (v or sibling_camera_info(t)) for v, t in zip(per_camera("camera_info_topics"), topics)]
    names = [v or topic_camera_name(t, i) for i, (v, t) in enumerate(zip(per_camera("camera_names"), topics))]
    rectified = []
    for value, topic in zip(per_camera("images_rectified"), topics):
        if value not in ("", "auto", "true", "false"):
            problems.append(f"images_rectified entries must be true, false or auto, got {value!r}")
        rectified.append(value == "true" or (value in ("", "auto") and is_rectified_topic(topic)))
    if len(set(names)) != len(names):
        problems.append(f"camera_names must be unique, got {names}: set camera_names explicitly")
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", raw["device"]):
        problems.append(f"device must be auto, cpu, cuda or cuda:N, got {raw['device']!r}")
    if raw["reference_camera"] >= max(count, 1):
        problems.append(f"reference_camera {raw['reference_camera']} is out of range for {count} camera(s)")
    depth_topics = per_camera("scale.depth_topics")
    if raw["scale.mode"] == "depth" and not any(depth_topics):
        problems.append("scale.mode depth needs scale.depth_topics: set e.g. scale.depth_topics:=\"['/camera/aligned_depth_to_color/image_raw']\"")
    if raw["scale.mode"] == "odometry" and not raw["scale.odometry_topic"]:
        problems.append("scale.mode odometry needs scale.odometry_topic: set e.g. scale.odometry_topic:=/odom")
    mount = list(raw["scale.camera_in_base"])
    if len(mount) != 7 or not all(math.isfinite(v) for v in mount) or not 0.99 < math.sqrt(sum(v * v for v in mount[3:])) < 1.01:
        problems.append(f"scale.camera_in_base must be 7 finite numbers x y z qx qy qz qw with a unit quaternion, got {mount}")
    warm_up = list(raw["warm_up.image_size"])
    if warm_up != [0, 0] and (len(warm_up) != 2 or min(warm_up) < 1 or max(warm_up) > 16384):
        problems.append(f"warm_up.image_size must be [width, height] in pixels (1..16384) or [0, 0] for no warm-up, got {warm_up}")
    if raw["backend"] == "onnxruntime" and not raw["onnx_model"]:
        problems.append("backend onnxruntime needs onnx_model: export the model with moe3d-export --frames 1-<window_size> "
                        "--out model.onnx and set onnx_model:=/path/to/model.onnx")
    try:
        provider_options = parse_provider_options([entry for entry in raw["onnx_provider_options"] if entry])
    except ValueError as exc:
        problems.append(str(exc))
        provider_options = {}
    if raw["window_size"] < count:
        problems.append(f"window_size ({raw['window_size']}) must be at least the number of cameras ({count})")
    try:
        filter_cfg = filter_from(raw)
    except ValueError as exc:
        problems.append(f"filter: {exc}")
        filter_cfg = FilterConfig()
    if problems:
        raise ValueError("invalid parameters: " + "; ".join(problems))
    return NodeSettings(
        image_topics=topics,
        camera_info_topics=info,
        camera_names=names,
        images_rectified=rectified,
        compressed=[raw["compressed"] or t.endswith("/compressed") for t in topics],
        input_qos=raw["input_qos"],
        max_stamp_jump=raw["max_stamp_jump"],
        camera_info_tolerance=raw["camera_info_tolerance"],
        reference_camera=raw["reference_camera"],
        window_size=raw["window_size"],
        keyframe_spacing=raw["keyframe_spacing"],
        stale_timeout=raw["stale_timeout"],
        checkpoint=raw["checkpoint"],
        preset=raw["preset"],
        moe_head=raw["moe_head"],
        backend=raw["backend"],
        onnx_model=raw["onnx_model"],
        onnx_providers=[p for p in raw["onnx_providers"] if p],
        onnx_provider_options=provider_options,
        device=raw["device"],
        precision=raw["precision"],
        encoder_cache=raw["encoder_cache"],
        compile=raw["compile"],
        cuda_graph=raw["cuda_graph"],
        device_preprocess=raw["device_preprocess"],
        device_postprocess=raw["device_postprocess"],
        pipeline=raw["pipeline"],
        warm_up_image_size=tuple(warm_up) if warm_up != [0, 0] else (),
        preprocess_mode=raw["preprocess_mode"],
        fusion=raw["fusion"],
        filter=filter_cfg,
        output_size=raw["output_size"],
        organized=raw["cloud.organized"],
        decimation=raw["cloud.decimation"],
        output_reliability=raw["output_reliability"],
        scale_mode=raw["scale.mode"],
        scale_factor=raw["scale.factor"],
        scale_publish_unscaled=raw["scale.publish_unscaled"],
        scale_depth_topics=depth_topics,
        scale_max_stamp_gap=raw["scale.max_stamp_gap"],
        scale_odometry_topic=raw["scale.odometry_topic"],
        scale_camera_in_base=tuple(mount),
        scale_min_baseline=raw["scale.min_baseline"],
        scale_odometry_baseline=raw["scale.odometry_baseline"],
        scale_base_frame=raw["scale.base_frame"],
        diagnostics_period=raw["diagnostics_period"],
        raw=raw,
    )


def filter_from(values: dict[str, Any]) -> FilterConfig:
    return FilterConfig(
        min_confidence=values["filter.min_confidence"],
        max_gate_entropy=values["filter.max_gate_entropy"],
        min_expert_spread=values["filter.min_expert_spread"],
        max_edge_jump=values["filter.max_edge_jump"],
        edge_test=values["filter.edge_test"],
        min_depth=values["filter.min_depth"],
        max_depth=values["filter.max_depth"],
    )


def validate_change(settings: NodeSettings, params: list[Parameter]) -> tuple[SetParametersResult, dict[str, Any]]:
    """Check a run-time change; returns the result and the merged raw values when accepted."""
    merged = dict(settings.raw)
    for param in params:
        if param.name not in SPECS:
            continue
        reason = check_value(param.name, param.value)
        if reason:
            return SetParametersResult(successful=False, reason=reason), merged
        merged[param.name] = param.value
    try:
        filter_from(merged)
    except ValueError as exc:
        return SetParametersResult(successful=False, reason=f"filter: {exc}"), merged
    return SetParametersResult(successful=True), merged


def apply_change(settings: NodeSettings, merged: dict[str, Any]) -> None:
    settings.raw = merged
    settings.filter = filter_from(merged)
    settings.fusion = merged["fusion"]
    settings.organized = merged["cloud.organized"]
    settings.decimation = merged["cloud.decimation"]
    settings.scale_factor = merged["scale.factor"]
    settings.scale_publish_unscaled = merged["scale.publish_unscaled"]
