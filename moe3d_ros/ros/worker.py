"""The node's worker thread (never a subscription callback): takes window snapshots, decodes,
runs the engine, filters, scales, and hands each window's outputs to the publishers. It does
nothing while no output has a subscriber; a failed window is counted and dropped, never fatal."""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage

from ..inference.engine import InferenceEngine, Predictions, is_out_of_memory
from ..intake.camera import CameraState
from ..intake.checks import Rejected, shorten
from ..intake.stderr_capture import capture_stderr, emit, is_decoder_line
from ..intake.window import StampedFrame, WindowSnapshot
from ..outputs.device_postprocess import device_outputs
from ..outputs.postprocess import camera_cloud, camera_poses, camera_product, fused_cloud, product_intrinsics
from ..outputs.registration import register_to_source
from ..outputs.visual_baseline import visual_log_ratios
from ..outputs.scale import (
    ScaleEstimate,
    ScaleMeasurement,
    ScaleRefused,
    ScaleTracker,
    depth_measurement,
    odometry_log_ratios,
    publishable,
    robust_log_fit,
)
from ..timing import RateLimiter
from .conversions import compressed_to_rgb, image_to_rgb
from .publishers import OutputPublishers, Outputs
from .settings import NodeSettings
from .subscriptions import Intake

FAULT_ENV = "MOE3D_FAULT_INJECTION"  # test facility: "engine_oom:N" raises an OOM on the N-th engine call
WAIT_S = 0.2  # how often the thread looks at the shutdown flag


@dataclass
class WorkerStats:
    windows: int = 0
    idle_skips: int = 0
    errors: int = 0
    oom: int = 0
    decoder_messages: int = 0
    invalid_outputs: int = 0
    unscaled_withheld: int = 0  # windows not published: a metric scale mode without a measurement yet
    inference_s: float = 0.0
    host_s: float = 0.0
    window_s: float = 0.0
    latency_s: float = 0.0
    warm_up_s: float = 0.0
    last_sizes: tuple = ()
    last_error: str = ""
    last_error_time: float = field(default=-np.inf)


class Worker:
    def __init__(self, node: Node, settings: NodeSettings, engine: InferenceEngine, intake: Intake, outputs: OutputPublishers,
                 scale: ScaleTracker, rate_limit: RateLimiter) -> None:
        self.node, self.settings, self.engine = node, settings, engine
        self.outputs, self.scale, self.rate_limit = outputs, scale, rate_limit
        self.intake, self.cameras, self.window, self.odometry = intake, intake.cameras, intake.window, intake.odometry
        self.log = node.get_logger()
        self.stats = WorkerStats()
        self.last_scale = ScaleEstimate(1.0, 0.0, 0, "no_data", "no window yet")
        self._fault = os.environ.get(FAULT_ENV, "")
        self._running = True
        self._thread = threading.Thread(target=self._run, name="moe3d_worker", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._running = False
        self.window.close()
        self._thread.join(timeout=10.0)

    def _run(self) -> None:
        self._warm_up()
        while self._running:
            snapshot = self.window.take(timeout=WAIT_S)
            if snapshot is None or not self._running:
                continue
            if not self.outputs.wanted():
                self.stats.idle_skips += 1
                for frame in snapshot.newest:
                    self.cameras[frame.camera].health.served()
                continue
            try:
                self._process(snapshot)
            except Exception as exc:  # the node keeps serving: log, count, drop this window
                self.engine_error(exc)

    def _warm_up(self) -> None:
        """Prepare every window size the node can run (compilation, graph capture, kernel choice)
        before the first frame: on CUDA, or whenever the forward is compiled."""
        s = self.settings
        if not s.warm_up_image_size or not (s.compile or self.engine.device.type == "cuda"):
            return
        width, height = s.warm_up_image_size
        sizes = list(range(len(self.cameras), s.window_size + 1))
        self.log.info(f"warming up for windows of {sizes[0]}..{sizes[-1]} frames at {width}x{height} ...")
        try:
            seconds = self.engine.warm_up(sizes, (height, width))
        except Exception as exc:  # the node still serves: the first windows prepare themselves
            self.engine_error(exc)
            return
        self.stats.warm_up_s = seconds
        self.log.info(f"warm-up done in {seconds:.1f} s")

    def engine_error(self, exc: Exception) -> None:
        self.stats.errors += 1
        text = str(exc).splitlines()[0][:200] if str(exc) else ""
        if is_out_of_memory(exc):
            self.stats.oom += 1
            self.engine.release()
            self.stats.last_error = f"out of memory: {text}"
        else:
            self.stats.last_error = f"{type(exc).__name__}: {text}"
        self.stats.last_error_time = time.monotonic()
        if self._running and self.rate_limit.allow(f"engine:{type(exc).__name__}"):
            self.log.error(f"window dropped: {self.stats.last_error}")

    def _decode(self, snapshot: WindowSnapshot) -> tuple[list[StampedFrame], list[np.ndarray]]:
        frames, images = [], []
        for frame in snapshot.frames:
            msg = frame.payload
            try:
                rgb = self._decode_compressed(msg) if isinstance(msg, CompressedImage) else image_to_rgb(msg)
            except Rejected as exc:
                self.intake.reject(self.cameras[frame.camera], exc.reason, str(exc), time.monotonic())
                continue
            model, _ = self.cameras[frame.camera].model_for(frame.stamp_ns, rgb.shape[:2])
            if model is not None and model.rectification is not None:  # a distorted raw image: made pinhole first
                rgb = model.rectification.apply(rgb)
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
            if not is_decoder_line(line):
                emit(line)
                continue
            self.stats.decoder_messages += 1
            if self.rate_limit.allow("decoder"):
                suppressed = self.rate_limit.take_suppressed("decoder")
                more = f" ({suppressed} more since the last report)" if suppressed else ""
                self.log.warning(f"image decoder: {shorten(line, 200)}{more}")

    def _maybe_inject_fault(self) -> None:
        kind, _, count = self._fault.partition(":")
        if kind == "engine_oom" and count.isdigit() and self.stats.windows + self.stats.errors + 1 == int(count):
            raise torch.OutOfMemoryError(f"injected by {FAULT_ENV} for testing")

    def _intrinsics_for(self, camera: CameraState, frame: StampedFrame, size: tuple[int, int]) -> np.ndarray | None:
        k, mismatch = camera.intrinsics_for(frame.stamp_ns, size)
        if mismatch and self.rate_limit.allow(f"{camera.name}:info_size"):
            self.log.warning(f"{camera.name}: {mismatch}")
        return k

    def _process(self, snapshot: WindowSnapshot) -> None:
        window_start = time.perf_counter()
        frames, images = self._decode(snapshot)
        if not frames:
            return
        sizes = tuple(sorted({img.shape[:2] for img in images}))
        if len(sizes) > 1 and sizes != self.stats.last_sizes and self.rate_limit.allow("sizes"):
            self.log.warning(f"cameras of different sizes {list(sizes)} in one window: padded to the largest")
        self.stats.last_sizes = sizes
        decode_s = time.perf_counter() - window_start
        newest: dict[int, int] = {}  # camera -> index of its newest frame in the window
        for index, frame in enumerate(frames):
            newest.setdefault(frame.camera, index)
        measured = self._measured_depths(frames, set(newest.values()))  # now: a slow window must not outlive its frames' depth images
        self._maybe_inject_fault()
        pred = self.engine.run(images, keys=[(f.camera, f.stamp_ns) for f in frames])
        post_start = time.perf_counter()
        scale = self._update_scale(frames, pred, list(newest.values()), measured)
        if not publishable(self.settings.scale_mode, self.last_scale, self.settings.scale_publish_unscaled):
            self._withhold_unscaled(frames, newest.values())
            return
        published, intrinsics = [], []
        for camera_index, frame_index in newest.items():
            camera = self.cameras[camera_index]
            k = self._intrinsics_for(camera, frames[frame_index], images[frame_index].shape[:2])
            if not np.isfinite(product_intrinsics(pred, frame_index, k)).all():  # the model's own prediction: never published
                self.stats.invalid_outputs += 1
                if self.rate_limit.allow(f"{camera.name}:invalid_k"):
                    self.log.error(f"{camera.name}: the model predicted non-finite intrinsics; its outputs are withheld")
                continue
            published.append(frame_index)
            intrinsics.append(k)
        outputs = self._outputs_of(pred, frames, published, intrinsics, scale) if published else None
        for frame_index in newest.values():
            self.cameras[frames[frame_index].camera].health.served()
        if outputs is not None:
            self.outputs.submit(outputs)
        self.stats.windows += 1
        self.stats.inference_s = sum(pred.timings.values())
        self.stats.host_s = decode_s + pred.timings.get("preprocess", 0.0) + time.perf_counter() - post_start
        self.stats.window_s = time.perf_counter() - window_start
        self.stats.latency_s = (self.node.get_clock().now().nanoseconds - frames[0].stamp_ns) / 1e9

    def _withhold_unscaled(self, frames: list[StampedFrame], newest) -> None:
        """Metric or silent: a window without a measured scale publishes nothing (it still counts
        as served, and /diagnostics says why)."""
        self.stats.unscaled_withheld += 1
        self.stats.windows += 1
        for frame_index in newest:
            self.cameras[frames[frame_index].camera].health.served()

    def _outputs_of(self, pred: Predictions, frames: list[StampedFrame], published: list[int],
                    intrinsics: list[np.ndarray | None], scale: float) -> Outputs:
        """Depth products of the published frames, and the cloud and poses when subscribed; a
        camera's products go out once per input stamp."""
        s = self.settings
        want_cloud = self.outputs.want_cloud()
        poses = camera_poses(pred, scale) if self.outputs.want_poses() else None
        if poses is not None and not (np.isfinite(poses[0]).all() and np.isfinite(poses[1]).all()):
            self.stats.invalid_outputs += 1
            if self.rate_limit.allow("invalid_poses"):
                self.log.error("the model predicted non-finite camera poses; no cloud or poses published")
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
        want_camera_clouds = self.outputs.want_camera_clouds()
        camera_clouds = {frames[i].camera: camera_cloud(product, s.organized, s.decimation)
                         for i, product in zip(published, products) if want_camera_clouds[frames[i].camera]}
        if s.output_size == "input":  # the clouds above stay on the model's grid; the images match the camera's
            products = [register_to_source(pred, product, k) for product, k in zip(products, intrinsics)]
        outputs = Outputs([], frames[0].payload.header, poses, cloud)
        for frame_index, product in zip(published, products):
            frame = frames[frame_index]
            camera = self.cameras[frame.camera]
            if frame.stamp_ns != camera.last_published_ns:
                outputs.cameras.append((frame.camera, product, frame.payload.header))
                if frame.camera in camera_clouds:
                    outputs.camera_clouds[frame.camera] = camera_clouds[frame.camera]
                camera.last_published_ns = frame.stamp_ns
        return outputs

    def _model_intrinsics(self, pred: Predictions, frame: StampedFrame, index: int) -> np.ndarray:
        """K of window frame `index` on the model's grid: the camera's CameraInfo mapped there, else the prediction."""
        k, _ = self.cameras[frame.camera].intrinsics_for(frame.stamp_ns, pred.transforms[index].source_hw)
        if k is None:
            return pred.intrinsics[index].astype(np.float64)
        return pred.transforms[index].intrinsics_to_model(torch.from_numpy(np.asarray(k, dtype=np.float64))).numpy()

    def _measured_depths(self, frames: list[StampedFrame], newest: set[int]) -> list[np.ndarray | None]:
        """Each frame's metric depth image (scale.mode depth), looked up before the model runs: the
        history holds the last few only. A window's newest frames wait up to `scale.max_stamp_gap`
        for a depth image still on its way (the image's callback may run before its depth's)."""
        if self.settings.scale_mode != "depth":
            return [None] * len(frames)
        deadline = time.monotonic() + self.settings.scale_max_stamp_gap  # one wait for the window, not one per camera
        measured = []
        for index, frame in enumerate(frames):
            depths = self.cameras[frame.camera].depths
            if depths is None:
                measured.append(None)
            elif index in newest:
                measured.append(depths.wait_nearest(frame.stamp_ns, max(deadline - time.monotonic(), 0.0)))
            else:
                measured.append(depths.nearest(frame.stamp_ns))
        return measured

    def _update_scale(self, frames: list[StampedFrame], pred: Predictions, published: list[int],
                      measured: list[np.ndarray | None]) -> float:
        """Metres (or the first window's units) per model unit for this window, from the tracker."""
        s = self.settings
        measurement: ScaleMeasurement | ScaleRefused | None = None
        try:
            if s.scale_mode == "depth":
                measurement = depth_measurement(list(pred.depth), measured, pred.transforms, published)
            elif s.scale_mode == "odometry":
                reference = frames[0].camera
                indices = [i for i, f in enumerate(frames) if f.camera == reference]  # the mounted camera's frames
                metric = [self.odometry.camera_position(frames[i].stamp_ns) for i in indices]
                if s.scale_odometry_baseline == "images":
                    k = [self._model_intrinsics(pred, frames[i], i) for i in indices]
                    ratios = visual_log_ratios([pred.images[i] for i in indices], [pred.depth[i] for i in indices], k, metric,
                                               s.scale_min_baseline)
                else:
                    positions, _ = camera_poses(pred)
                    ratios = odometry_log_ratios(positions[indices], metric, s.scale_min_baseline)
                measurement = robust_log_fit(ratios, min_samples=1)
        except ScaleRefused as exc:
            measurement = exc
        depths = {(f.camera, f.stamp_ns): pred.depth[i] for i, f in enumerate(frames)}
        estimate = self.scale.update(depths, measurement)
        if estimate.status != self.last_scale.status and self.rate_limit.allow(f"scale:{estimate.status}"):
            text = f"scale {estimate.status}: {estimate.scale:.4g} per model unit {estimate.reason}".rstrip()
            if estimate.status in ("ok", "relative", "fixed"):  # (rclpy wants one severity per call site)
                self.log.info(text)
            else:
                self.log.warning(text)
        self.last_scale = estimate
        return estimate.scale
