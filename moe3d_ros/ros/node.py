"""moe3d_node: camera windows in; depth, confidence, gating maps, poses and clouds out.

Subscription callbacks check a message (stamp, frame_id, encoding, declared size, compressed
headers: all before anything is allocated for it) and hand a reference to the FrameWindow. A
worker thread takes window snapshots, decodes, runs the engine and the boundary-clean filter,
and publishes; it does nothing while no output has a subscriber. Every output carries the stamp
and frame_id of the image it was computed from, and a camera's outputs go out once per stamp.
"""
from __future__ import annotations

import difflib
import os
import queue
import re
import threading
import time
from dataclasses import dataclass

import numpy as np
import torch
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Pose, PoseArray
from nav_msgs.msg import Odometry
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_msgs.msg import Header

from ..io.checkpoint import load_for_inference
from ..outputs.device_postprocess import device_outputs
from ..inference.engine import EngineConfig, InferenceEngine, Predictions, resolve_device
from ..intake.health import ERROR, OK, WARN, CameraHealth
from ..intake.checks import Rejected, check_frame_id, shorten
from ..outputs.postprocess import CameraProduct, camera_poses, camera_product, fused_cloud, gating_colors, product_intrinsics
from ..outputs.scale import (
    OdometryTrack,
    ScaleEstimate,
    ScaleMeasurement,
    ScaleRefused,
    ScaleTracker,
    depth_measurement,
    odometry_log_ratios,
    pose_matrix,
    robust_log_fit,
)
from ..intake.stamps import NS, StampedHistory, StampGuard, stamp_to_ns
from ..intake.stderr_capture import capture_stderr, emit
from ..intake.window import FrameWindow, StampedFrame, WindowSnapshot
from . import settings as params
from .conversions import (
    camera_info_intrinsics,
    camera_info_msg,
    check_compressed,
    check_image,
    cloud_msg,
    compressed_to_rgb,
    depth_msg,
    image_msg,
    image_to_rgb,
    metric_depth,
    odometry_pose,
)
from .input_qos import InputSubscription
from .runtime import run_node

THROTTLE_S = 5.0
ENGINE_ERROR_HOLD_S = 10.0  # the engine status stays ERROR this long after a failed window
QOS_CHECK_PERIOD_S = 1.0
CAMERA_INFO_HISTORY = 64
DEPTH_HISTORY = 16  # metric depth images kept per camera for the scale
DECODER_LINE = re.compile(r"libpng|libjpeg|JPEG|PNG|imgcodecs|IDAT|IHDR|zlib", re.IGNORECASE)
FAULT_ENV = "MOE3D_FAULT_INJECTION"  # test facility: "engine_oom:N" raises an OOM on the N-th engine call
LEVELS = {OK: DiagnosticStatus.OK, WARN: DiagnosticStatus.WARN, ERROR: DiagnosticStatus.ERROR}


@dataclass
class Outputs:
    """What one window publishes, computed by the worker; messages are built from it."""

    cameras: list[tuple[int, CameraProduct, Header]]  # camera index, its product, the image's header
    reference: Header
    poses: tuple[np.ndarray, np.ndarray] | None = None  # positions [S, 3], quaternions [S, 4]
    cloud: np.ndarray | None = None  # CLOUD_DTYPE records


class RateLimiter:
    """At most one log line per `period` seconds per key (rclpy throttles per call site,
    which would hide a second kind of fault behind the first)."""

    def __init__(self, period: float) -> None:
        self.period = period
        self.last: dict[str, float] = {}
        self.suppressed: dict[str, int] = {}
        self.lock = threading.Lock()

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        with self.lock:
            if now - self.last.get(key, -np.inf) < self.period:
                self.suppressed[key] = self.suppressed.get(key, 0) + 1
                return False
            self.last[key] = now
            return True

    def take_suppressed(self, key: str) -> int:
        with self.lock:
            return self.suppressed.pop(key, 0)


def is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, (MemoryError, torch.OutOfMemoryError)):
        return True
    return isinstance(exc, RuntimeError) and ("out of memory" in str(exc) or "can't allocate memory" in str(exc))


@dataclass
class CameraState:
    name: str
    image_topic: str
    health: CameraHealth
    stamps: StampGuard
    infos: StampedHistory  # stamp -> (K at the source image's resolution, (height, width))
    depths: StampedHistory | None = None  # stamp -> metric depth [m] registered to the image (scale.mode depth)
    image_hw: tuple[int, int] | None = None  # of the last accepted image
    last_published_ns: int = 0


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
        params.declare(self)  # raises ValueError naming the bad parameter and the fix
        self.settings = params.read(self)
        s = self.settings
        self._warn_unknown_parameters()
        self.rate_limit = RateLimiter(THROTTLE_S)
        self.engine, description = self._load_engine()
        self.model_description = description
        self.cameras = [
            CameraState(name, topic, CameraHealth(s.stale_timeout), StampGuard(s.max_stamp_jump),
                        StampedHistory(CAMERA_INFO_HISTORY, int(s.camera_info_tolerance * NS)))
            for name, topic in zip(s.camera_names, s.image_topics)
        ]
        gap_ns = int(s.scale_max_stamp_gap * NS)
        for camera, topic in zip(self.cameras, s.scale_depth_topics):
            camera.depths = StampedHistory(DEPTH_HISTORY, gap_ns) if s.scale_mode == "depth" and topic else None
        self.odometry = (OdometryTrack(pose_matrix(s.scale_camera_in_base[:3], s.scale_camera_in_base[3:]), gap_ns)
                         if s.scale_mode == "odometry" else None)
        self.scale = ScaleTracker(s.scale_mode, s.scale_factor)
        self.last_scale = ScaleEstimate(1.0, 0.0, 0, "no_data", "no window yet")
        self.window = FrameWindow(len(self.cameras), s.window_size, s.keyframe_spacing, s.stale_timeout, s.reference_camera)
        reliability = ReliabilityPolicy.RELIABLE if s.output_reliability == "reliable" else ReliabilityPolicy.BEST_EFFORT
        out_qos = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=reliability)
        self.has_moe = self.engine.model.config.depth_head == "moe"
        self.pubs = Publishers(self, s.camera_names, out_qos, gating=self.has_moe)
        self.diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.inputs: list[InputSubscription] = []
        log = self.get_logger().info
        for index, camera in enumerate(self.cameras):
            msg_type = CompressedImage if s.compressed[index] else Image
            self.inputs.append(InputSubscription(self, msg_type, camera.image_topic, lambda m, i=index: self._on_image(i, m),
                                                 s.input_qos, log))
            if s.camera_info_topics[index]:
                self.inputs.append(InputSubscription(self, CameraInfo, s.camera_info_topics[index],
                                                     lambda m, i=index: self._on_info(i, m), s.input_qos, log))
            if camera.depths is not None:
                self.inputs.append(InputSubscription(self, Image, s.scale_depth_topics[index],
                                                     lambda m, i=index: self._on_depth(i, m), s.input_qos, log))
        if self.odometry is not None:  # depth 1 like every input: the track interpolates between the samples it gets
            self.inputs.append(InputSubscription(self, Odometry, s.scale_odometry_topic, self._on_odometry, s.input_qos, log))
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.stats = {"windows": 0, "idle_skips": 0, "errors": 0, "oom": 0, "inference_s": 0.0, "latency_s": 0.0,
                      "host_s": 0.0, "window_s": 0.0, "last_sizes": (), "decoder_messages": 0, "invalid_outputs": 0,
                      "warm_up_s": 0.0}
        self.last_engine_error = ""
        self.last_engine_error_time = -np.inf
        self._fault = os.environ.get(FAULT_ENV, "")
        self.create_timer(s.diagnostics_period, self._publish_diagnostics)
        self.create_timer(QOS_CHECK_PERIOD_S, self._update_input_qos)
        self._publish_lock = threading.Lock()
        self._running = True
        self._outputs: queue.Queue[Outputs] = queue.Queue(maxsize=1)  # the worker waits while a window is published
        self._publisher = threading.Thread(target=self._publish_loop, name="moe3d_publisher", daemon=True)
        if s.pipeline:
            self._publisher.start()
        self._worker = threading.Thread(target=self._work, name="moe3d_worker", daemon=True)
        self._worker.start()
        scale = {
            "relative": "RELATIVE (up to scale, not metres; the first window's unit, kept)",
            "fixed": f"metres (fixed factor {s.scale_factor} x the first window's unit)",
            "depth": f"METRIC, scaled by the depth topics {[t for t in s.scale_depth_topics if t]}",
            "odometry": f"METRIC, scaled by odometry {s.scale_odometry_topic} (camera in base {list(s.scale_camera_in_base)}, "
                        f"baselines >= {s.scale_min_baseline} m)",
        }[s.scale_mode]
        self.get_logger().info(
            f"model: {description}; device {self.engine.description}; cameras {s.image_topics}; depth is {scale}; "
            f"outputs under {self.get_namespace()}"
        )

    # -- start-up ------------------------------------------------------------------------------
    def _warn_unknown_parameters(self) -> None:
        for name in params.unknown_parameters(self):
            close = difflib.get_close_matches(name, params.SPECS, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            self.get_logger().warning(f"unknown parameter {shorten(name)!r} ignored{hint}; `ros2 param list` shows the node's parameters")

    def _load_engine(self) -> tuple[InferenceEngine, str]:
        s = self.settings
        model, description = load_for_inference(s.checkpoint, s.preset, s.moe_head, self.get_logger().warning)
        if model.config.depth_head == "moe":
            model.depth_head.fusion = s.fusion
        cache = 2 * s.window_size if s.encoder_cache else 0
        engine = InferenceEngine(model, EngineConfig(
            device=s.device, precision=s.precision, mode=s.preprocess_mode, encoder_cache=cache, compile=s.compile,
            cuda_graph=s.cuda_graph, device_preprocess=s.device_preprocess,
            keep_on_device=s.device_postprocess and resolve_device(s.device).type == "cuda"))  # NumPy is faster on a CPU
        for note in engine.notes:
            self.get_logger().warning(note)
        return engine, description

    def _warm_up(self) -> None:
        """Prepare every window size the node can run (compilation, graph capture, kernel choice)
        before the first frame: on CUDA, or whenever the forward is compiled."""
        s = self.settings
        if not s.warm_up_image_size or not (s.compile or self.engine.device.type == "cuda"):
            return
        width, height = s.warm_up_image_size
        sizes = list(range(len(self.cameras), s.window_size + 1))
        self.get_logger().info(f"warming up for windows of {sizes[0]}..{sizes[-1]} frames at {width}x{height} ...")
        try:
            seconds = self.engine.warm_up(sizes, (height, width))
        except Exception as exc:  # the node still serves: the first windows prepare themselves
            self._engine_error(exc)
            return
        self.stats["warm_up_s"] = seconds
        self.get_logger().info(f"warm-up done in {seconds:.1f} s")

    def _on_set_parameters(self, changes) -> object:
        result, merged = params.validate_change(self.settings, changes)
        if result.successful:
            params.apply_change(self.settings, merged)
            if self.has_moe:
                self.engine.model.depth_head.fusion = self.settings.fusion
            self.scale.factor = self.settings.scale_factor
        return result

    def _update_input_qos(self) -> None:
        for subscription in self.inputs:
            subscription.update()

    # -- callbacks: cheap ----------------------------------------------------------------------
    def _on_image(self, index: int, msg) -> None:
        camera = self.cameras[index]
        now = time.monotonic()
        try:
            stamp = stamp_to_ns(msg.header.stamp.sec, msg.header.stamp.nanosec)
            check_frame_id(msg.header.frame_id)
            if isinstance(msg, Image):
                check_image(msg)
                size = (msg.height, msg.width)
            else:
                width, height = check_compressed(msg)
                size = (height, width)
            verdict = camera.stamps.check(stamp, self.get_clock().now().nanoseconds)
        except Rejected as exc:
            self._reject(camera, exc.reason, str(exc), now)
            return
        if verdict == "resync":
            self.window.reset_camera(index)
            self.get_logger().warning(f"{camera.name}: the camera's clock jumped; re-synchronised at stamp {stamp / NS:.3f} s")
        camera.image_hw = size
        result = self.window.add(StampedFrame(index, stamp, msg))
        if result == "accepted":
            camera.health.accept(now)
        else:
            self._reject(camera, result, f"stamp {stamp / NS:.3f} s is not newer than the camera's newest frame", now)

    def _on_info(self, index: int, msg: CameraInfo) -> None:
        camera = self.cameras[index]
        try:
            stamp = stamp_to_ns(msg.header.stamp.sec, msg.header.stamp.nanosec)
            k = camera_info_intrinsics(msg)
            if camera.image_hw is not None and camera.image_hw != (msg.height, msg.width):
                raise Rejected("camera_info", f"CameraInfo is {msg.width}x{msg.height} but the images are "
                                              f"{camera.image_hw[1]}x{camera.image_hw[0]}")
        except Rejected as exc:
            reason = exc.reason if exc.reason.startswith("camera_info") else "camera_info"
            self._reject(camera, reason, f"camera_info: {exc}", time.monotonic())
            return
        camera.infos.add(stamp, (k, (msg.height, msg.width)))

    def _on_depth(self, index: int, msg: Image) -> None:
        """A metric depth image for the scale: converted here (cheap), kept by stamp."""
        camera = self.cameras[index]
        try:
            stamp = stamp_to_ns(msg.header.stamp.sec, msg.header.stamp.nanosec)
            depth = metric_depth(msg)
        except Rejected as exc:
            self._reject(camera, "scale_input", f"scale depth: {exc}", time.monotonic())
            return
        camera.depths.add(stamp, depth)

    def _on_odometry(self, msg: Odometry) -> None:
        try:
            stamp = stamp_to_ns(msg.header.stamp.sec, msg.header.stamp.nanosec)
            pose = odometry_pose(msg)
        except Rejected as exc:
            self._reject(self.cameras[self.settings.reference_camera], "scale_input", f"odometry: {exc}", time.monotonic())
            return
        self.odometry.add(stamp, pose)

    def _reject(self, camera: CameraState, reason: str, message: str, now: float) -> None:
        camera.health.reject(reason, message, now)
        key = f"{camera.name}:{reason}"
        if self.rate_limit.allow(key):
            suppressed = self.rate_limit.take_suppressed(key)
            more = f" ({suppressed} more since the last report)" if suppressed else ""
            self.get_logger().warning(f"{camera.name}: rejected message ({reason}): {shorten(message, 200)}{more}")

    # -- worker --------------------------------------------------------------------------------
    def _work(self) -> None:
        self._warm_up()
        while self._running:
            snapshot = self.window.take(timeout=0.2)
            if snapshot is None or not self._running:
                continue
            if not self.pubs.wanted():
                self.stats["idle_skips"] += 1
                for frame in snapshot.newest:
                    self.cameras[frame.camera].health.served()
                continue
            try:
                self._process(snapshot)
            except Exception as exc:  # the node keeps serving: log, count, drop this window
                self._engine_error(exc)

    def _engine_error(self, exc: Exception) -> None:
        self.stats["errors"] += 1
        text = str(exc).splitlines()[0][:200] if str(exc) else ""
        if is_out_of_memory(exc):
            self.stats["oom"] += 1
            self.engine.release()
            self.last_engine_error = f"out of memory: {text}"
        else:
            self.last_engine_error = f"{type(exc).__name__}: {text}"
        self.last_engine_error_time = time.monotonic()
        if self._running and self.rate_limit.allow(f"engine:{type(exc).__name__}"):
            self.get_logger().error(f"window dropped: {self.last_engine_error}")

    def _decode(self, snapshot: WindowSnapshot) -> tuple[list[StampedFrame], list[np.ndarray]]:
        frames, images = [], []
        for frame in snapshot.frames:
            camera = self.cameras[frame.camera]
            msg = frame.payload
            try:
                rgb = self._decode_compressed(msg) if isinstance(msg, CompressedImage) else image_to_rgb(msg)
            except Rejected as exc:
                self._reject(camera, exc.reason, str(exc), time.monotonic())
                continue
            frames.append(frame)
            images.append(rgb)
        return frames, images

    def _decode_compressed(self, msg: CompressedImage) -> np.ndarray:
        """Decode with the decoder's stderr caught (libpng and libjpeg print there from C)."""
        printed: list[str] = []
        try:
            with capture_stderr() as printed:
                return compressed_to_rgb(msg)
        finally:
            self._pass_on(printed)  # filled when the capture ends, before this runs

    def _pass_on(self, lines: list[str]) -> None:
        """Decoder messages become one rate-limited warning; other threads' lines go back to stderr."""
        for line in lines:
            if DECODER_LINE.search(line) and "moe3d" not in line:
                self.stats["decoder_messages"] += 1
                if self.rate_limit.allow("decoder"):
                    suppressed = self.rate_limit.take_suppressed("decoder")
                    more = f" ({suppressed} more since the last report)" if suppressed else ""
                    self.get_logger().warning(f"image decoder: {shorten(line, 200)}{more}")
            else:
                emit(line)

    def _maybe_inject_fault(self) -> None:
        kind, _, count = self._fault.partition(":")
        if kind == "engine_oom" and count.isdigit() and self.stats["windows"] + self.stats["errors"] + 1 == int(count):
            raise torch.OutOfMemoryError(f"injected by {FAULT_ENV} for testing")

    def _intrinsics_for(self, camera: CameraState, frame: StampedFrame, size: tuple[int, int]) -> np.ndarray | None:
        """K of the CameraInfo with the frame's stamp (or the newest older one within the
        tolerance) when it fits the image; else None: the model's prediction is used."""
        info = camera.infos.at(frame.stamp_ns)
        if info is None:
            return None
        k, info_size = info
        if info_size != size:
            if self.rate_limit.allow(f"{camera.name}:info_size"):
                self.get_logger().warning(f"{camera.name}: CameraInfo is {info_size[1]}x{info_size[0]} but the image is "
                                          f"{size[1]}x{size[0]}: using predicted intrinsics")
            return None
        return k

    def _process(self, snapshot: WindowSnapshot) -> None:
        window_start = host_start = time.perf_counter()
        frames, images = self._decode(snapshot)
        if not frames:
            return
        sizes = tuple(sorted({img.shape[:2] for img in images}))
        if len(sizes) > 1 and sizes != self.stats["last_sizes"] and self.rate_limit.allow("sizes"):
            self.get_logger().warning(f"cameras of different sizes {list(sizes)} in one window: padded to the largest")
        self.stats["last_sizes"] = sizes
        decode_s = time.perf_counter() - host_start
        self._maybe_inject_fault()
        pred = self.engine.run(images, keys=[(f.camera, f.stamp_ns) for f in frames])
        post_start = time.perf_counter()
        newest: dict[int, int] = {}
        for index, frame in enumerate(frames):
            newest.setdefault(frame.camera, index)
        scale = self._update_scale(frames, pred, list(newest.values()))
        published, intrinsics = [], []
        for camera_index, frame_index in newest.items():
            camera = self.cameras[camera_index]
            k = self._intrinsics_for(camera, frames[frame_index], images[frame_index].shape[:2])
            if not np.isfinite(product_intrinsics(pred, frame_index, k)).all():  # the model's own prediction: never published
                self.stats["invalid_outputs"] += 1
                if self.rate_limit.allow(f"{camera.name}:invalid_k"):
                    self.get_logger().error(f"{camera.name}: the model predicted non-finite intrinsics; its outputs are withheld")
                continue
            published.append(frame_index)
            intrinsics.append(k)
        outputs = self._outputs_of(pred, frames, published, intrinsics, scale) if published else None
        for frame_index in newest.values():
            self.cameras[frames[frame_index].camera].health.served()
        if outputs is not None:
            if self.settings.pipeline:
                while self._running:  # waits while the previous window is still being published
                    try:
                        self._outputs.put(outputs, timeout=0.2)
                        break
                    except queue.Full:
                        continue
            else:
                self._publish_outputs(outputs)
        self.stats["windows"] += 1
        self.stats["inference_s"] = sum(pred.timings.values())
        self.stats["host_s"] = decode_s + pred.timings.get("preprocess", 0.0) + time.perf_counter() - post_start
        self.stats["window_s"] = time.perf_counter() - window_start
        now_ns = self.get_clock().now().nanoseconds
        self.stats["latency_s"] = (now_ns - frames[0].stamp_ns) / 1e9

    def _outputs_of(self, pred: Predictions, frames: list[StampedFrame], published: list[int],
                    intrinsics: list[np.ndarray | None], scale: float) -> Outputs:
        """Depth products of the published frames, and the cloud and poses when subscribed; a
        camera's products go out once per input stamp."""
        s = self.settings
        want_poses = self.pubs.points.get_subscription_count() > 0 or self.pubs.poses.get_subscription_count() > 0
        want_cloud = self.pubs.points.get_subscription_count() > 0
        poses = camera_poses(pred, scale) if want_poses else None
        if poses is not None and not (np.isfinite(poses[0]).all() and np.isfinite(poses[1]).all()):
            self.stats["invalid_outputs"] += 1
            if self.rate_limit.allow("invalid_poses"):
                self.get_logger().error("the model predicted non-finite camera poses; no cloud or poses published")
            poses, want_cloud = None, False
        organized = s.organized and len({pred.transforms[i].content_hw for i in published}) == 1
        cloud = None
        if pred.on_device is not None:
            products, cloud = device_outputs(pred, published, s.filter, scale, intrinsics, want_cloud,
                                             organized, s.decimation)
        else:
            products = [camera_product(pred, i, s.filter, scale, k) for i, k in zip(published, intrinsics)]
            if want_cloud:
                cloud = fused_cloud(pred, products, organized, s.decimation, scale)
        outputs = Outputs([], frames[0].payload.header, poses, cloud)
        for frame_index, product in zip(published, products):
            frame = frames[frame_index]
            camera = self.cameras[frame.camera]
            if frame.stamp_ns != camera.last_published_ns:
                outputs.cameras.append((frame.camera, product, frame.payload.header))
                camera.last_published_ns = frame.stamp_ns
        return outputs

    def _update_scale(self, frames: list[StampedFrame], pred, published: list[int]) -> float:
        """Metres (or the first window's units) per model unit for this window, from the tracker."""
        s = self.settings
        measurement: ScaleMeasurement | ScaleRefused | None = None
        try:
            if s.scale_mode == "depth":
                measured = [self.cameras[f.camera].depths.nearest(f.stamp_ns) if self.cameras[f.camera].depths else None
                            for f in frames]
                measurement = depth_measurement(list(pred.depth), measured, pred.transforms, published)
            elif s.scale_mode == "odometry":
                reference = frames[0].camera
                indices = [i for i, f in enumerate(frames) if f.camera == reference]  # the mounted camera's frames
                positions, _ = camera_poses(pred)
                metric = [self.odometry.camera_position(frames[i].stamp_ns) for i in indices]
                measurement = robust_log_fit(odometry_log_ratios(positions[indices], metric, s.scale_min_baseline), min_samples=1)
        except ScaleRefused as exc:
            measurement = exc
        depths = {(f.camera, f.stamp_ns): pred.depth[i] for i, f in enumerate(frames)}
        estimate = self.scale.update(depths, measurement)
        if estimate.status != self.last_scale.status and self.rate_limit.allow(f"scale:{estimate.status}"):
            text = f"scale {estimate.status}: {estimate.scale:.4g} per model unit {estimate.reason}".rstrip()
            if estimate.status in ("ok", "relative", "fixed"):  # (rclpy wants one severity per call site)
                self.get_logger().info(text)
            else:
                self.get_logger().warning(text)
        self.last_scale = estimate
        return estimate.scale

    def _publish_loop(self) -> None:
        """The pipeline's second thread: builds and publishes messages while the worker runs the next window."""
        while self._running:
            try:
                outputs = self._outputs.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                self._publish_outputs(outputs)
            except Exception as exc:  # keep publishing later windows
                if self._running and self.rate_limit.allow(f"publish:{type(exc).__name__}"):
                    self.get_logger().error(f"publishing failed: {type(exc).__name__}: {shorten(str(exc), 200)}")

    def _publish_outputs(self, outputs: Outputs) -> None:
        for camera_index, product, header in outputs.cameras:
            self._publish_camera(camera_index, product, header)
        if outputs.cloud is not None:
            self._publish(self.pubs.points, cloud_msg(outputs.cloud, outputs.reference))
        if outputs.poses is not None and self.pubs.poses.get_subscription_count() > 0:
            msg = PoseArray(header=outputs.reference)
            for p, q in zip(*outputs.poses):
                pose = Pose()
                pose.position.x, pose.position.y, pose.position.z = (float(v) for v in p)
                pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w = (float(v) for v in q)
                msg.poses.append(pose)
            self._publish(self.pubs.poses, msg)

    def _publish(self, publisher, msg) -> None:
        """Publish unless shutdown has begun (the context may already be gone)."""
        with self._publish_lock:
            if self._running:
                publisher.publish(msg)

    def _publish_camera(self, index: int, product, header: Header) -> None:
        """Each message is built only when its topic has a subscriber; depth and its
        camera_info always go together."""
        pubs = self.pubs.per_camera[index]
        height, width = product.depth.shape
        wanted = {name: pub.get_subscription_count() > 0 for name, pub in pubs.items()}
        if wanted["depth"] or wanted["info"]:
            self._publish(pubs["depth"], depth_msg(product.depth, header))
            self._publish(pubs["info"], camera_info_msg(product.intrinsics, width, height, header))
        if wanted["confidence"]:
            self._publish(pubs["confidence"], image_msg(product.confidence, "32FC1", header))
        if product.winner is not None and wanted.get("gating"):
            self._publish(pubs["gating"], image_msg(product.winner, "mono8", header))
        if product.winner is not None and wanted.get("gating_color"):
            self._publish(pubs["gating_color"], image_msg(gating_colors(product.winner), "rgb8", header))

    # -- diagnostics ---------------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        now = time.monotonic()
        counters = self.window.stats()
        msg = DiagnosticArray()
        msg.header.stamp = self.get_clock().now().to_msg()
        qos = {sub.topic: sub.describe() for sub in self.inputs}
        for camera, count in zip(self.cameras, counters):
            report = camera.health.report(now, self.stats["window_s"])
            values = {
                "topic": camera.image_topic, "input_qos": qos.get(camera.image_topic, ""), **report.values,
                "dropped_superseded": count.superseded, "stale_windows": count.stale_windows,
                "stamp_resyncs": camera.stamps.resyncs, "camera_info": "yes" if len(camera.infos) else "no",
            }
            msg.status.append(self._status(f"moe3d: camera {camera.name}", LEVELS[report.level], report.message, values))
        s = self.settings
        recent_error = now - self.last_engine_error_time <= ENGINE_ERROR_HOLD_S
        level = DiagnosticStatus.ERROR if recent_error else DiagnosticStatus.OK
        estimate = self.last_scale
        values = {
            "model": self.model_description, "device": self.engine.description, "windows": self.stats["windows"],
            "idle_skips_no_subscriber": self.stats["idle_skips"], "errors": self.stats["errors"], "out_of_memory": self.stats["oom"],
            "last_error": self.last_engine_error, "decoder_messages": self.stats["decoder_messages"],
            "withheld_invalid_outputs": self.stats["invalid_outputs"],
            "warm_up_s": round(self.stats["warm_up_s"], 1),
            "experts": self.engine.model.config.moe.num_experts if self.has_moe else 0,
            "encoder_cache_hits": self.engine.cache.hits if self.engine.cache else "off",
            "encoder_cache_misses": self.engine.cache.misses if self.engine.cache else "off",
            "inference_time_s": f"{self.stats['inference_s']:.4f}", "host_time_s": f"{self.stats['host_s']:.4f}",
            "stamp_to_publish_latency_s": f"{self.stats['latency_s']:.4f}",
            "scale": s.scale_mode if s.scale_mode != "relative" else "relative (up to scale)",
            "scale_value": f"{estimate.scale:.6g}", "scale_status": estimate.status, "scale_samples": estimate.samples,
            "scale_uncertainty": f"{estimate.uncertainty:.4f}", "scale_reason": estimate.reason,
            "scale_resets": self.scale.resets, "scale_outliers": self.scale.outliers,
        }
        msg.status.append(self._status("moe3d: engine", level, self.last_engine_error if recent_error else "ok", values))
        self._publish(self.diagnostics, msg)

    def _status(self, name: str, level: bytes, message: str, values: dict) -> DiagnosticStatus:
        status = DiagnosticStatus(level=level, name=name, message=message, hardware_id=self.get_fully_qualified_name())
        status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        return status

    def destroy_node(self) -> None:
        """Stop the worker before the node (and the context) go away: nothing is published after."""
        with self._publish_lock:
            self._running = False
        self.window.close()
        self._worker.join(timeout=10.0)
        if self._publisher.is_alive():
            self._publisher.join(timeout=10.0)
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    # Two executor threads: subscription callbacks keep flowing while a timer or service runs.
    return run_node(Moe3dNode, "moe3d_node", args, threads=2)


if __name__ == "__main__":
    raise SystemExit(main())
