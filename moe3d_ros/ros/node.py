"""moe3d_node: camera windows in; depth, confidence, gating maps, poses and clouds out.

Subscription callbacks only check a message's shape (O(1)) and hand a reference to the
FrameWindow. A worker thread takes window snapshots, decodes, runs the engine and the
boundary-clean filter, and publishes; it does nothing while no output has a subscriber.
Every output carries the stamp and frame_id of the image it was computed from.
"""
from __future__ import annotations

import math
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import torch
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Pose, PoseArray
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_msgs.msg import Header

from ..checkpoint import load_for_inference
from ..engine import EngineConfig, InferenceEngine
from ..postprocess import camera_poses, camera_product, fused_cloud, gating_colors
from ..window import FrameWindow, StampedFrame, WindowSnapshot
from . import settings as params
from .conversions import (
    ENCODINGS,
    ConversionError,
    camera_info_intrinsics,
    camera_info_msg,
    cloud_msg,
    compressed_to_rgb,
    depth_msg,
    image_msg,
    image_to_rgb,
)
from .runtime import run_node

THROTTLE_S = 5.0
FAULT_ENV = "MOE3D_FAULT_INJECTION"  # test facility: "engine_oom:N" raises an OOM on the N-th engine call


class RateLimiter:
    """At most one log line per `period` seconds per key (rclpy throttles per call site,
    which would hide a second kind of fault behind the first)."""

    def __init__(self, period: float) -> None:
        self.period = period
        self.last: dict[str, float] = {}
        self.lock = threading.Lock()

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        with self.lock:
            if now - self.last.get(key, -math.inf) < self.period:
                return False
            self.last[key] = now
            return True


def check_image(msg: Image) -> None:
    """O(1) shape checks in the callback, so malformed images never displace good frames."""
    if msg.encoding not in ENCODINGS:
        raise ConversionError(f"unsupported encoding {msg.encoding!r} (supported: {', '.join(ENCODINGS)})")
    if msg.width == 0 or msg.height == 0:
        raise ConversionError(f"zero-sized image ({msg.width}x{msg.height})")
    channels, dtype = ENCODINGS[msg.encoding]
    if msg.step < msg.width * channels * np.dtype(dtype).itemsize or len(msg.data) != msg.step * msg.height:
        raise ConversionError(f"data has {len(msg.data)} bytes, expected step x height = {msg.step} x {msg.height}")


def is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, (MemoryError, torch.OutOfMemoryError)):
        return True
    return isinstance(exc, RuntimeError) and ("out of memory" in str(exc) or "can't allocate memory" in str(exc))


@dataclass
class CameraState:
    name: str
    image_topic: str
    frame_id: str = ""
    intrinsics: np.ndarray | None = None  # from CameraInfo, at the source image's resolution
    info_hw: tuple[int, int] | None = None
    bad_messages: int = 0
    last_error: str = ""
    arrivals: deque = field(default_factory=lambda: deque(maxlen=200))  # receive times for the input rate


class Publishers:
    """Per-camera publishers plus the shared ones; gating topics only with an MoE head."""

    def __init__(self, node: Node, names: list[str], qos: QoSProfile, gating: bool) -> None:
        self.per_camera = []
        for name in names:
            entry = {
                "depth": node.create_publisher(Image, f"{name}/depth/image", qos),
                "info": node.create_publisher(CameraInfo, f"{name}/depth/camera_info", qos),
                "confidence": node.create_publisher(Image, f"{name}/confidence", qos),
            }
            if gating:
                entry["gating"] = node.create_publisher(Image, f"{name}/gating", qos)
                entry["gating_color"] = node.create_publisher(Image, f"{name}/gating/color", qos)
            self.per_camera.append(entry)
        self.points = node.create_publisher(PointCloud2, "points", qos)
        self.poses = node.create_publisher(PoseArray, "poses", qos)

    def all(self):
        for entry in self.per_camera:
            yield from entry.values()
        yield self.points
        yield self.poses

    def wanted(self) -> bool:
        return any(pub.get_subscription_count() > 0 for pub in self.all())


class Moe3dNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("moe3d_node", namespace="moe3d", **kwargs)
        params.declare(self)
        self.settings = params.read(self)  # raises ValueError naming the bad parameter
        s = self.settings
        self.rate_limit = RateLimiter(THROTTLE_S)
        self.engine, description = self._load_engine()
        self.model_description = description
        self.cameras = [CameraState(name, topic) for name, topic in zip(s.camera_names, s.image_topics)]
        self.window = FrameWindow(len(self.cameras), s.window_size, s.keyframe_spacing, s.stale_timeout, s.reference_camera)
        reliability = ReliabilityPolicy.RELIABLE if s.output_reliability == "reliable" else ReliabilityPolicy.BEST_EFFORT
        out_qos = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=reliability)
        self.has_moe = self.engine.model.config.depth_head == "moe"
        self.pubs = Publishers(self, s.camera_names, out_qos, gating=self.has_moe)
        self.diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        in_qos = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=qos_profile_sensor_data.reliability)
        for index, camera in enumerate(self.cameras):
            msg_type = CompressedImage if s.compressed[index] else Image
            self.create_subscription(msg_type, camera.image_topic, lambda m, i=index: self._on_image(i, m), in_qos)
            if s.camera_info_topics[index]:
                self.create_subscription(CameraInfo, s.camera_info_topics[index], lambda m, i=index: self._on_info(i, m), in_qos)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.stats = {"windows": 0, "idle_skips": 0, "errors": 0, "oom": 0, "inference_s": 0.0, "latency_s": 0.0,
                      "host_s": 0.0, "last_sizes": ()}
        self.last_engine_error = ""
        self._fault = os.environ.get(FAULT_ENV, "")
        self.create_timer(s.diagnostics_period, self._publish_diagnostics)
        self._running = True
        self._worker = threading.Thread(target=self._work, name="moe3d_worker", daemon=True)
        self._worker.start()
        scale = "RELATIVE (up to scale, not metres)" if s.scale_mode == "relative" else f"metres (fixed factor {s.scale_factor})"
        self.get_logger().info(
            f"model: {description}; device {self.engine.description}; cameras {s.image_topics}; depth is {scale}; "
            f"outputs under {self.get_namespace()}"
        )

    # -- start-up ------------------------------------------------------------------------------
    def _load_engine(self) -> tuple[InferenceEngine, str]:
        s = self.settings
        model, description = load_for_inference(s.checkpoint, s.preset, s.moe_head, self.get_logger().warning)
        if model.config.depth_head == "moe":
            model.depth_head.fusion = s.fusion
        engine = InferenceEngine(model, EngineConfig(device=s.device, precision=s.precision, mode=s.preprocess_mode))
        return engine, description

    def _on_set_parameters(self, changes) -> object:
        result, merged = params.validate_change(self.settings, changes)
        if result.successful:
            params.apply_change(self.settings, merged)
            if self.has_moe:
                self.engine.model.depth_head.fusion = self.settings.fusion
        return result

    # -- callbacks: cheap ----------------------------------------------------------------------
    def _on_image(self, index: int, msg) -> None:
        camera = self.cameras[index]
        try:
            if isinstance(msg, Image):
                check_image(msg)
            elif len(msg.data) == 0:
                raise ConversionError("compressed image has no data")
        except ConversionError as exc:
            self._bad_input(camera, str(exc))
            return
        camera.arrivals.append(time.monotonic())
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        verdict = self.window.add(StampedFrame(index, stamp, msg))
        if verdict != "accepted" and self.rate_limit.allow(f"{camera.name}:{verdict}"):
            self.get_logger().warning(f"{camera.name}: {verdict.replace('_', '-')} stamp {stamp} dropped")

    def _on_info(self, index: int, msg: CameraInfo) -> None:
        camera = self.cameras[index]
        try:
            camera.intrinsics = camera_info_intrinsics(msg)
            camera.info_hw = (msg.height, msg.width)
        except ConversionError as exc:
            self._bad_input(camera, f"camera_info: {exc}")

    def _bad_input(self, camera: CameraState, reason: str) -> None:
        camera.bad_messages += 1
        camera.last_error = reason
        if self.rate_limit.allow(f"{camera.name}:{reason.split(' ')[0]}"):
            self.get_logger().warning(f"{camera.name}: dropped message: {reason}")

    # -- worker --------------------------------------------------------------------------------
    def _work(self) -> None:
        while self._running:
            snapshot = self.window.take(timeout=0.2)
            if snapshot is None:
                continue
            if not self.pubs.wanted():
                self.stats["idle_skips"] += 1
                continue
            try:
                self._process(snapshot)
            except Exception as exc:  # the node keeps serving: log, count, drop this window
                self.stats["errors"] += 1
                if is_out_of_memory(exc):
                    self.stats["oom"] += 1
                    self.last_engine_error = f"out of memory: {str(exc).splitlines()[0][:200]}"
                    if self.engine.device.type == "cuda":
                        torch.cuda.empty_cache()
                else:
                    self.last_engine_error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
                if self.rate_limit.allow(f"engine:{type(exc).__name__}"):
                    self.get_logger().error(f"window dropped: {self.last_engine_error}")

    def _decode(self, snapshot: WindowSnapshot) -> tuple[list[StampedFrame], list[np.ndarray]]:
        frames, images = [], []
        for frame in snapshot.frames:
            camera = self.cameras[frame.camera]
            try:
                msg = frame.payload
                rgb = compressed_to_rgb(msg) if isinstance(msg, CompressedImage) else image_to_rgb(msg)
            except ConversionError as exc:
                self._bad_input(camera, str(exc))
                continue
            camera.frame_id = frame.payload.header.frame_id
            frames.append(frame)
            images.append(rgb)
        return frames, images

    def _maybe_inject_fault(self) -> None:
        kind, _, count = self._fault.partition(":")
        if kind == "engine_oom" and count.isdigit() and self.stats["windows"] + self.stats["errors"] + 1 == int(count):
            raise torch.OutOfMemoryError(f"injected by {FAULT_ENV} for testing")

    def _process(self, snapshot: WindowSnapshot) -> None:
        host_start = time.perf_counter()
        frames, images = self._decode(snapshot)
        if not frames:
            return
        sizes = tuple(sorted({img.shape[:2] for img in images}))
        if len(sizes) > 1 and sizes != self.stats["last_sizes"] and self.rate_limit.allow("sizes"):
            self.get_logger().warning(f"cameras of different sizes {list(sizes)} in one window: padded to the largest")
        self.stats["last_sizes"] = sizes
        decode_s = time.perf_counter() - host_start
        self._maybe_inject_fault()
        pred = self.engine.run(images)
        post_start = time.perf_counter()
        s = self.settings
        newest: dict[int, int] = {}
        for index, frame in enumerate(frames):
            newest.setdefault(frame.camera, index)
        products = []
        for camera_index, frame_index in newest.items():
            camera = self.cameras[camera_index]
            k = camera.intrinsics if camera.info_hw == images[frame_index].shape[:2] else None
            product = camera_product(pred, frame_index, s.filter, s.scale, k)
            products.append(product)
            header = frames[frame_index].payload.header
            self._publish_camera(camera_index, product, header)
        reference = frames[0].payload.header
        if self.pubs.points.get_subscription_count() > 0:
            organized = s.organized and len({p.depth.shape for p in products}) == 1
            self.pubs.points.publish(cloud_msg(fused_cloud(pred, products, organized, s.decimation), reference))
        if self.pubs.poses.get_subscription_count() > 0:
            self.pubs.poses.publish(self._poses_msg(pred, reference))
        self.stats["windows"] += 1
        self.stats["inference_s"] = sum(pred.timings.values())
        self.stats["host_s"] = decode_s + pred.timings.get("preprocess", 0.0) + time.perf_counter() - post_start
        now_ns = self.get_clock().now().nanoseconds
        self.stats["latency_s"] = (now_ns - frames[0].stamp_ns) / 1e9

    def _publish_camera(self, index: int, product, header: Header) -> None:
        """Each message is built only when its topic has a subscriber; depth and its
        camera_info always go together."""
        pubs = self.pubs.per_camera[index]
        height, width = product.depth.shape
        wanted = {name: pub.get_subscription_count() > 0 for name, pub in pubs.items()}
        if wanted["depth"] or wanted["info"]:
            pubs["depth"].publish(depth_msg(product.depth, header))
            pubs["info"].publish(camera_info_msg(product.intrinsics, width, height, header))
        if wanted["confidence"]:
            pubs["confidence"].publish(image_msg(product.confidence, "32FC1", header))
        if product.winner is not None and wanted.get("gating"):
            pubs["gating"].publish(image_msg(product.winner, "mono8", header))
        if product.winner is not None and wanted.get("gating_color"):
            pubs["gating_color"].publish(image_msg(gating_colors(product.winner), "rgb8", header))

    def _poses_msg(self, pred, header: Header) -> PoseArray:
        positions, quaternions = camera_poses(pred)
        msg = PoseArray(header=header)
        for p, q in zip(positions, quaternions):
            pose = Pose()
            pose.position.x, pose.position.y, pose.position.z = (float(v) for v in p)
            pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w = (float(v) for v in q)
            msg.poses.append(pose)
        return msg

    # -- diagnostics ---------------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        now = time.monotonic()
        counters = self.window.stats()
        msg = DiagnosticArray()
        msg.header.stamp = self.get_clock().now().to_msg()
        for camera, count in zip(self.cameras, counters):
            recent = [t for t in camera.arrivals if now - t <= 5.0]
            rate = (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 1 and recent[-1] > recent[0] else 0.0
            silent = not camera.arrivals or now - camera.arrivals[-1] > self.settings.stale_timeout
            level = DiagnosticStatus.WARN if silent or camera.last_error else DiagnosticStatus.OK
            message = "silent" if silent else (camera.last_error or "ok")
            values = {
                "topic": camera.image_topic, "input_rate_hz": f"{rate:.2f}", "received": count.received,
                "dropped_out_of_order": count.out_of_order, "dropped_duplicate": count.duplicate,
                "dropped_superseded": count.superseded, "stale_windows": count.stale_windows,
                "dropped_bad_message": camera.bad_messages, "camera_info": "yes" if camera.intrinsics is not None else "no",
            }
            msg.status.append(self._status(f"moe3d: camera {camera.name}", level, message, values))
        s = self.settings
        level = DiagnosticStatus.ERROR if self.last_engine_error else DiagnosticStatus.OK
        scale = "relative (up to scale)" if s.scale_mode == "relative" else f"fixed {s.scale_factor} m/unit"
        values = {
            "model": self.model_description, "device": self.engine.description, "windows": self.stats["windows"],
            "idle_skips_no_subscriber": self.stats["idle_skips"], "errors": self.stats["errors"], "out_of_memory": self.stats["oom"],
            "inference_time_s": f"{self.stats['inference_s']:.4f}", "host_time_s": f"{self.stats['host_s']:.4f}",
            "stamp_to_publish_latency_s": f"{self.stats['latency_s']:.4f}", "scale": scale,
        }
        msg.status.append(self._status("moe3d: engine", level, self.last_engine_error or "ok", values))
        self.diagnostics.publish(msg)

    def _status(self, name: str, level: bytes, message: str, values: dict) -> DiagnosticStatus:
        status = DiagnosticStatus(level=level, name=name, message=message, hardware_id=self.get_fully_qualified_name())
        status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        return status

    def destroy_node(self) -> None:
        self._running = False
        self.window.close()
        self._worker.join(timeout=5.0)
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    # Two executor threads: subscription callbacks keep flowing while a timer or service runs.
    return run_node(Moe3dNode, "moe3d_node", args, threads=2)


if __name__ == "__main__":
    raise SystemExit(main())
