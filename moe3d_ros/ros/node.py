"""moe3d_node: camera windows in; depth, confidence, gating maps, poses and clouds out.

The node only wires the parts, each in its own module: parameters (`settings`), the input
subscriptions (`subscriptions.Intake`: cheap checks, then the FrameWindow), the worker thread
(`worker.Worker`: decode, engine, filter, scale) and the publishers (`publishers.OutputPublishers`,
optionally pipelined), plus `/diagnostics` (`diagnostics`). Every output carries the stamp and
frame_id of the image it was computed from, and a camera's outputs go out once per stamp.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

from ..inference.engine import EngineConfig, InferenceEngine, resolve_device
from ..inference.onnx_backend import OnnxModel
from ..inference.preprocess import plan_transform
from ..intake.camera import CameraState
from ..intake.checks import shorten
from ..intake.stamps import NS
from ..intake.window import FrameWindow
from ..io.checkpoint import load_for_inference
from ..outputs.scale import OdometryTrack, ScaleTracker, pose_matrix
from ..timing import RateLimiter
from . import settings as params
from .diagnostics import NodeDiagnostics
from .publishers import OutputPublishers
from .runtime import run_node
from .subscriptions import Intake
from .worker import Worker

THROTTLE_S = 5.0  # at most one log line per kind of fault in this many seconds
QOS_CHECK_PERIOD_S = 1.0


@dataclass
class Configured:
    """What configuring the node gives: its validated settings and the loaded model (the costly
    part, kept while a managed node is inactive)."""

    settings: params.NodeSettings
    engine: InferenceEngine
    description: str
    has_moe: bool
    rate_limit: RateLimiter


def configure(node: Node) -> Configured:
    """Read and check the (declared) parameters and load the model; raises ValueError (or a
    checkpoint error) naming what to fix."""
    settings = params.read(node)
    for name in params.unknown_parameters(node):
        close = difflib.get_close_matches(name, params.SPECS, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        node.get_logger().warning(f"unknown parameter {shorten(name)!r} ignored{hint}; `ros2 param list` shows the node's parameters")
    engine, description = _load_engine(node, settings)
    return Configured(settings, engine, description, engine.model.config.depth_head == "moe", RateLimiter(THROTTLE_S))


class Running:
    """The node at work: subscriptions, the worker thread, publishers, diagnostics and timers,
    built on a configured model; `stop()` takes them all down again and keeps the model."""

    def __init__(self, node: Node, configured: Configured) -> None:
        s = configured.settings
        self.node = node
        cameras = [
            CameraState.create(name, topic, s.stale_timeout, s.max_stamp_jump, s.camera_info_tolerance,
                               s.scale_max_stamp_gap if s.scale_mode == "depth" and depth_topic else None)
            for name, topic, depth_topic in zip(s.camera_names, s.image_topics, s.scale_depth_topics)
        ]
        for camera, rectified in zip(cameras, s.images_rectified):
            camera.rectified = rectified
        odometry = (OdometryTrack(pose_matrix(s.scale_camera_in_base[:3], s.scale_camera_in_base[3:]),
                                  int(s.scale_max_stamp_gap * NS)) if s.scale_mode == "odometry" else None)
        self.scale = ScaleTracker(s.scale_mode, s.scale_factor)
        window = FrameWindow(len(cameras), s.window_size, s.keyframe_spacing, s.stale_timeout, s.reference_camera)
        reliability = ReliabilityPolicy.RELIABLE if s.output_reliability == "reliable" else ReliabilityPolicy.BEST_EFFORT
        out_qos = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=reliability)
        rate_limit = configured.rate_limit
        self.outputs = OutputPublishers(node, s.camera_names, out_qos, configured.has_moe, s.pipeline, rate_limit)
        self.diagnostics = node.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.intake = Intake(node, s, cameras, window, odometry, rate_limit)
        self.worker = Worker(node, s, configured.engine, self.intake, self.outputs, self.scale, rate_limit)
        self.report = NodeDiagnostics(node, self.intake, self.worker, configured.description,
                                      configured.engine.model.config.moe.num_experts if configured.has_moe else 0)
        self.timers = [node.create_timer(s.diagnostics_period, self._publish_diagnostics),
                       node.create_timer(QOS_CHECK_PERIOD_S, self.intake.update_qos)]

    def _publish_diagnostics(self) -> None:
        self.outputs.publish_other(self.diagnostics, self.report.message())

    def stop(self) -> None:
        """Stop publishing, then the worker, then unsubscribe and remove the publishers and timers."""
        self.outputs.close()
        self.worker.stop()
        for timer in self.timers:
            self.node.destroy_timer(timer)
        self.intake.close()
        self.outputs.destroy(self.node)
        self.node.destroy_publisher(self.diagnostics)


def apply_parameters(configured: Configured | None, running: Running | None, changes) -> object:
    """A run-time parameter change, validated against the settings (accepted as it is before the
    node is configured: configuring reads and checks it)."""
    if configured is None:
        return SetParametersResult(successful=True)
    result, merged = params.validate_change(configured.settings, changes)
    if result.successful:
        params.apply_change(configured.settings, merged)
        if configured.has_moe:
            configured.engine.set_fusion(configured.settings.fusion)
        if running is not None:
            running.scale.factor = configured.settings.scale_factor
    return result


def started_words(node: Node, configured: Configured) -> str:
    s = configured.settings
    return (f"model: {configured.description}; device {configured.engine.description}; cameras {s.image_topics}; "
            f"depth is {scale_words(s)}; outputs under {node.get_namespace()}")


def scale_words(s: params.NodeSettings) -> str:
    words = {
        "relative": "RELATIVE (up to scale, not metres; the first window's unit, kept)",
        "fixed": f"metres (fixed factor {s.scale_factor} x each window's model unit)",
        "depth": f"METRIC, scaled by the depth topics {[t for t in s.scale_depth_topics if t]}",
        "odometry": f"METRIC, scaled by odometry {s.scale_odometry_topic} (camera in base {list(s.scale_camera_in_base)}, "
                    f"baselines >= {s.scale_min_baseline} m)",
    }[s.scale_mode]
    if s.scale_mode not in ("depth", "odometry"):
        return words
    if s.scale_publish_unscaled:
        return words + "; scale.publish_unscaled: RAW MODEL UNITS go out until the first measurement"
    return words + "; nothing is published until the first scale measurement"


def _load_engine(node: Node, s: params.NodeSettings) -> tuple[InferenceEngine, str]:
    if s.backend == "onnxruntime":
        model = OnnxModel(s.onnx_model, s.onnx_providers, provider_options=s.onnx_provider_options)
        model_hw = (plan_transform(s.warm_up_image_size[::-1], s.preprocess_mode, model.config.img_size).model_hw
                    if s.warm_up_image_size else None)
        problem = model.manifest.unserved(range(1, s.window_size + 1), model_hw)
        if problem:
            raise ValueError(f"onnx_model {s.onnx_model}: {problem} (window_size {s.window_size}, warm_up.image_size "
                             f"{list(s.warm_up_image_size)})")
        description = f"{s.onnx_model} ({model.manifest.description})"
    else:
        model, description = load_for_inference(s.checkpoint, s.preset, s.moe_head, node.get_logger().warning)
    cache = 2 * s.window_size if s.encoder_cache else 0
    engine = InferenceEngine(model, EngineConfig(
        device=s.device, precision=s.precision, mode=s.preprocess_mode, encoder_cache=cache, compile=s.compile,
        cuda_graph=s.cuda_graph, device_preprocess=s.device_preprocess,
        keep_on_device=s.device_postprocess and resolve_device(s.device).type == "cuda"))  # NumPy is faster on a CPU
    if model.config.depth_head == "moe":
        engine.set_fusion(s.fusion)
    for note in engine.notes:
        node.get_logger().warning(note)
    return engine, description


class Moe3dNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("moe3d_node", namespace="moe3d", **kwargs)
        params.declare(self)  # raises ValueError naming the bad parameter and the fix
        self.configured = configure(self)
        self.running = Running(self, self.configured)
        self.add_on_set_parameters_callback(lambda changes: apply_parameters(self.configured, self.running, changes))
        self.get_logger().info(started_words(self, self.configured))

    def destroy_node(self) -> None:
        """Stop publishing, then the worker, before the node (and the context) go away."""
        self.running.stop()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    # Two executor threads: subscription callbacks keep flowing while a timer or service runs.
    return run_node(Moe3dNode, "moe3d_node", args, threads=2)


if __name__ == "__main__":
    raise SystemExit(main())
