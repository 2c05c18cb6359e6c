"""moe3d_node: camera windows in; depth, confidence, gating maps, poses and clouds out.

The node only wires the parts, each in its own module: parameters (`settings`), the input
subscriptions (`subscriptions.Intake`: cheap checks, then the FrameWindow), the worker thread
(`worker.Worker`: decode, engine, filter, scale) and the publishers (`publishers.OutputPublishers`,
optionally pipelined), plus `/diagnostics` (`diagnostics`). Every output carries the stamp and
frame_id of the image it was computed from, and a camera's outputs go out once per stamp.
"""
from __future__ import annotations

import difflib

from diagnostic_msgs.msg import DiagnosticArray
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


class Moe3dNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("moe3d_node", namespace="moe3d", **kwargs)
        params.declare(self)  # raises ValueError naming the bad parameter and the fix
        self.settings = s = params.read(self)
        self._warn_unknown_parameters()
        rate_limit = RateLimiter(THROTTLE_S)
        engine, description = self._load_engine()
        self.has_moe = engine.model.config.depth_head == "moe"
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
        self.outputs = OutputPublishers(self, s.camera_names, out_qos, self.has_moe, s.pipeline, rate_limit)
        self.diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.intake = Intake(self, s, cameras, window, odometry, rate_limit)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.worker = Worker(self, s, engine, self.intake, self.outputs, self.scale, rate_limit)
        self.report = NodeDiagnostics(self, self.intake, self.worker, description,
                                      engine.model.config.moe.num_experts if self.has_moe else 0)
        self.create_timer(s.diagnostics_period, self._publish_diagnostics)
        self.create_timer(QOS_CHECK_PERIOD_S, self.intake.update_qos)
        self.get_logger().info(
            f"model: {description}; device {engine.description}; cameras {s.image_topics}; depth is {self._scale_words()}; "
            f"outputs under {self.get_namespace()}"
        )

    def _scale_words(self) -> str:
        s = self.settings
        return {
            "relative": "RELATIVE (up to scale, not metres; the first window's unit, kept)",
            "fixed": f"metres (fixed factor {s.scale_factor} x each window's model unit)",
            "depth": f"METRIC, scaled by the depth topics {[t for t in s.scale_depth_topics if t]}",
            "odometry": f"METRIC, scaled by odometry {s.scale_odometry_topic} (camera in base {list(s.scale_camera_in_base)}, "
                        f"baselines >= {s.scale_min_baseline} m)",
        }[s.scale_mode] + self._unscaled_words()

    def _unscaled_words(self) -> str:
        s = self.settings
        if s.scale_mode not in ("depth", "odometry"):
            return ""
        if s.scale_publish_unscaled:
            return "; scale.publish_unscaled: RAW MODEL UNITS go out until the first measurement"
        return "; nothing is published until the first scale measurement"

    def _warn_unknown_parameters(self) -> None:
        for name in params.unknown_parameters(self):
            close = difflib.get_close_matches(name, params.SPECS, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            self.get_logger().warning(f"unknown parameter {shorten(name)!r} ignored{hint}; `ros2 param list` shows the node's parameters")

    def _load_engine(self) -> tuple[InferenceEngine, str]:
        s = self.settings
        if s.backend == "onnxruntime":
            model = OnnxModel(s.onnx_model, s.onnx_providers)
            model_hw = (plan_transform(s.warm_up_image_size[::-1], s.preprocess_mode, model.config.img_size).model_hw
                        if s.warm_up_image_size else None)
            problem = model.manifest.unserved(range(1, s.window_size + 1), model_hw)
            if problem:
                raise ValueError(f"onnx_model {s.onnx_model}: {problem} (window_size {s.window_size}, warm_up.image_size "
                                 f"{list(s.warm_up_image_size)})")
            description = f"{s.onnx_model} ({model.manifest.description})"
        else:
            model, description = load_for_inference(s.checkpoint, s.preset, s.moe_head, self.get_logger().warning)
        cache = 2 * s.window_size if s.encoder_cache else 0
        engine = InferenceEngine(model, EngineConfig(
            device=s.device, precision=s.precision, mode=s.preprocess_mode, encoder_cache=cache, compile=s.compile,
            cuda_graph=s.cuda_graph, device_preprocess=s.device_preprocess,
            keep_on_device=s.device_postprocess and resolve_device(s.device).type == "cuda"))  # NumPy is faster on a CPU
        if model.config.depth_head == "moe":
            engine.set_fusion(s.fusion)
        for note in engine.notes:
            self.get_logger().warning(note)
        return engine, description

    def _on_set_parameters(self, changes) -> object:
        result, merged = params.validate_change(self.settings, changes)
        if result.successful:
            params.apply_change(self.settings, merged)
            if self.has_moe:
                self.worker.engine.set_fusion(self.settings.fusion)
            self.scale.factor = self.settings.scale_factor
        return result

    def _publish_diagnostics(self) -> None:
        self.outputs.publish_other(self.diagnostics, self.report.message())

    def destroy_node(self) -> None:
        """Stop publishing, then the worker, before the node (and the context) go away."""
        self.outputs.close()
        self.worker.stop()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    # Two executor threads: subscription callbacks keep flowing while a timer or service runs.
    return run_node(Moe3dNode, "moe3d_node", args, threads=2)


if __name__ == "__main__":
    raise SystemExit(main())
