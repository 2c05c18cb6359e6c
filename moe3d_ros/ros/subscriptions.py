"""The node's inputs: image, CameraInfo, metric depth and odometry subscriptions. Callbacks are
cheap: they check a message (stamp, frame_id, encoding, declared size, compressed headers: all
before anything is allocated for it) and hand a reference to the FrameWindow or a history."""
from __future__ import annotations

import time
from typing import Callable

from nav_msgs.msg import Odometry
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from ..intake.camera import CameraState
from ..intake.checks import Rejected, check_frame_id, shorten
from ..intake.stamps import NS, stamp_to_ns
from ..intake.window import FrameWindow, StampedFrame
from ..outputs.scale import OdometryTrack
from ..timing import RateLimiter
from .conversions import camera_model_of, check_compressed, check_image, metric_depth, odometry_pose
from .input_qos import InputSubscription
from .settings import NodeSettings


class Intake:
    """Subscribes every input of the node and keeps what arrives in the cameras' state, the
    window and the odometry track; `reject` counts and logs (rate-limited) a refused message."""

    def __init__(self, node: Node, settings: NodeSettings, cameras: list[CameraState], window: FrameWindow,
                 odometry: OdometryTrack | None, rate_limit: RateLimiter) -> None:
        self.node, self.cameras, self.window, self.odometry = node, cameras, window, odometry
        self.rate_limit = rate_limit
        self.reference_camera = settings.reference_camera
        self.base_frame = settings.scale_base_frame
        s = settings
        log = node.get_logger().info
        self.subscriptions: list[InputSubscription] = []

        def subscribe(msg_type: type, topic: str, callback: Callable) -> None:
            self.subscriptions.append(InputSubscription(node, msg_type, topic, callback, s.input_qos, log))

        for index, camera in enumerate(cameras):
            subscribe(CompressedImage if s.compressed[index] else Image, camera.image_topic,
                      lambda m, i=index: self.on_image(i, m))
            if s.camera_info_topics[index]:
                subscribe(CameraInfo, s.camera_info_topics[index], lambda m, i=index: self.on_info(i, m))
            if camera.depths is not None:
                subscribe(Image, s.scale_depth_topics[index], lambda m, i=index: self.on_depth(i, m))
        if odometry is not None:  # depth 1 like every input: the track interpolates between the samples it gets
            subscribe(Odometry, s.scale_odometry_topic, self.on_odometry)

    def close(self) -> None:
        """Unsubscribe from every input (a lifecycle deactivation)."""
        for subscription in self.subscriptions:
            subscription.destroy()
        self.subscriptions = []

    def update_qos(self) -> None:
        for subscription in self.subscriptions:
            subscription.update()

    def qos_in_use(self) -> dict[str, str]:
        return {sub.topic: sub.describe() for sub in self.subscriptions}

    def on_image(self, index: int, msg: Image | CompressedImage) -> None:
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
            verdict = camera.stamps.check(stamp, self.node.get_clock().now().nanoseconds)
        except Rejected as exc:
            self.reject(camera, exc.reason, str(exc), now)
            return
        if verdict == "resync":
            self.window.reset_camera(index)
            self.node.get_logger().warning(f"{camera.name}: the camera's clock jumped; re-synchronised at stamp {stamp / NS:.3f} s")
        camera.image_hw = size
        result = self.window.add(StampedFrame(index, stamp, msg))
        if result == "accepted":
            camera.health.accept(now)
        else:
            self.reject(camera, result, f"stamp {stamp / NS:.3f} s is not newer than the camera's newest frame", now)

    def on_info(self, index: int, msg: CameraInfo) -> None:
        camera = self.cameras[index]
        try:
            stamp = stamp_to_ns(msg.header.stamp.sec, msg.header.stamp.nanosec)
            model = camera_model_of(msg, camera)
            if camera.image_hw is not None and camera.image_hw != (msg.height, msg.width):
                raise Rejected("camera_info", f"CameraInfo is {msg.width}x{msg.height} but the images are "
                                              f"{camera.image_hw[1]}x{camera.image_hw[0]}")
        except Rejected as exc:
            reason = exc.reason if exc.reason.startswith("camera_info") else "camera_info"
            self.reject(camera, reason, f"camera_info: {exc}", time.monotonic())
            return
        camera.infos.add(stamp, model)

    def on_depth(self, index: int, msg: Image) -> None:
        """A metric depth image for the scale: converted here (cheap), kept by stamp."""
        camera = self.cameras[index]
        try:
            stamp = stamp_to_ns(msg.header.stamp.sec, msg.header.stamp.nanosec)
            depth = metric_depth(msg)
        except Rejected as exc:
            self.reject(camera, "scale_input", f"scale depth: {exc}", time.monotonic())
            return
        camera.depths.add(stamp, depth)

    def on_odometry(self, msg: Odometry) -> None:
        try:
            stamp = stamp_to_ns(msg.header.stamp.sec, msg.header.stamp.nanosec)
            base = self.base_frame
            if base and msg.child_frame_id != base:  # scale.camera_in_base is given in `base`: another frame's motion differs
                raise Rejected("scale_input", f"odometry of child_frame_id {shorten(msg.child_frame_id)!r}, not scale.base_frame "
                                              f"{base!r}")
            pose = odometry_pose(msg)
        except Rejected as exc:
            self.reject(self.cameras[self.reference_camera], "scale_input", f"odometry: {exc}", time.monotonic())
            return
        self.odometry.add(stamp, pose)

    def reject(self, camera: CameraState, reason: str, message: str, now: float) -> None:
        camera.health.reject(reason, message, now)
        key = f"{camera.name}:{reason}"
        if self.rate_limit.allow(key):
            suppressed = self.rate_limit.take_suppressed(key)
            more = f" ({suppressed} more since the last report)" if suppressed else ""
            self.node.get_logger().warning(f"{camera.name}: rejected message ({reason}): {shorten(message, 200)}{more}")
