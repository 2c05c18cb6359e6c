"""The node's outputs: per-camera depth, camera_info, confidence and gating images, the fused
cloud and the poses. Each message is built only when its topic has a subscriber; with `pipeline`
a second thread builds and publishes a window's messages while the worker runs the next one."""
from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field

import numpy as np
from geometry_msgs.msg import Pose, PoseArray
from rclpy.node import Node
from rclpy.qos import QoSProfile
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Header

from ..intake.checks import shorten
from ..outputs.postprocess import CameraProduct, gating_colors
from ..timing import RateLimiter
from .conversions import camera_info_msg, cloud_msg, depth_msg, image_msg

WAIT_S = 0.2  # how often the threads look at the shutdown flag


@dataclass
class Outputs:
    """What one window publishes, computed by the worker; messages are built from it."""

    cameras: list[tuple[int, CameraProduct, Header]]  # camera index, its product, the image's header
    reference: Header
    poses: tuple[np.ndarray, np.ndarray] | None = None  # positions [S, 3], quaternions [S, 4]
    cloud: np.ndarray | None = None  # CLOUD_DTYPE records
    camera_clouds: dict[int, np.ndarray] = field(default_factory=dict)  # camera index -> its own cloud (its optical frame)


def pose_array(header: Header, positions: np.ndarray, quaternions: np.ndarray) -> PoseArray:
    msg = PoseArray(header=header)
    for p, q in zip(positions, quaternions):
        pose = Pose()
        pose.position.x, pose.position.y, pose.position.z = (float(v) for v in p)
        pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w = (float(v) for v in q)
        msg.poses.append(pose)
    return msg


class OutputPublishers:
    """Per-camera publishers plus the shared ones (gating topics only with an MoE head), and the
    pipeline thread. Nothing is published once `close()` has begun."""

    def __init__(self, node: Node, names: list[str], qos: QoSProfile, gating: bool, pipeline: bool,
                 rate_limit: RateLimiter) -> None:
        self.per_camera = []
        for name in names:
            entry = {
                "depth": node.create_publisher(Image, f"{name}/depth/image", qos),
                "info": node.create_publisher(CameraInfo, f"{name}/depth/camera_info", qos),
                "confidence": node.create_publisher(Image, f"{name}/confidence", qos),
                "points": node.create_publisher(PointCloud2, f"{name}/points", qos),
            }
            if gating:
                entry["gating"] = node.create_publisher(Image, f"{name}/gating", qos)
                entry["gating_color"] = node.create_publisher(Image, f"{name}/gating/color", qos)
            self.per_camera.append(entry)
        self.points = node.create_publisher(PointCloud2, "points", qos)
        self.poses = node.create_publisher(PoseArray, "poses", qos)
        self._log, self._rate_limit = node.get_logger(), rate_limit
        self._lock = threading.Lock()
        self._open = True
        self._queue: queue.Queue[Outputs] = queue.Queue(maxsize=1)  # the worker waits while a window is published
        self._thread = threading.Thread(target=self._loop, name="moe3d_publisher", daemon=True) if pipeline else None
        if self._thread is not None:
            self._thread.start()

    def all(self):
        for entry in self.per_camera:
            yield from entry.values()
        yield self.points
        yield self.poses

    def wanted(self) -> bool:
        return any(pub.get_subscription_count() > 0 for pub in self.all())

    def want_cloud(self) -> bool:
        return self.points.get_subscription_count() > 0

    def want_camera_clouds(self) -> list[bool]:
        return [entry["points"].get_subscription_count() > 0 for entry in self.per_camera]

    def want_poses(self) -> bool:
        return self.want_cloud() or self.poses.get_subscription_count() > 0

    def submit(self, outputs: Outputs) -> None:
        """Publish now, or hand to the pipeline thread (waiting while it publishes the previous window)."""
        if self._thread is None:
            self.publish(outputs)
            return
        while self._open:
            try:
                self._queue.put(outputs, timeout=WAIT_S)
                return
            except queue.Full:
                continue

    def publish(self, outputs: Outputs) -> None:
        for camera_index, product, header in outputs.cameras:
            self._publish_camera(camera_index, product, header, outputs.camera_clouds.get(camera_index))
        if outputs.cloud is not None:
            self._publish(self.points, cloud_msg(outputs.cloud, outputs.reference))
        if outputs.poses is not None and self.poses.get_subscription_count() > 0:
            self._publish(self.poses, pose_array(outputs.reference, *outputs.poses))

    def publish_other(self, publisher, msg) -> None:
        """A message of another publisher of the node, under the same shutdown guard."""
        self._publish(publisher, msg)

    def close(self) -> None:
        """No publishing from here on (the context may go away); waits for the pipeline thread."""
        with self._lock:
            self._open = False
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=10.0)

    def destroy(self, node: Node) -> None:
        """close(), then remove every publisher from `node` (a lifecycle deactivation)."""
        self.close()
        for publisher in list(self.all()):
            node.destroy_publisher(publisher)

    def _loop(self) -> None:
        while self._open:
            try:
                outputs = self._queue.get(timeout=WAIT_S)
            except queue.Empty:
                continue
            try:
                self.publish(outputs)
            except Exception as exc:  # keep publishing later windows
                if self._open and self._rate_limit.allow(f"publish:{type(exc).__name__}"):
                    self._log.error(f"publishing failed: {type(exc).__name__}: {shorten(str(exc), 200)}")

    def _publish(self, publisher, msg) -> None:
        """Publish unless shutdown has begun (the context may already be gone)."""
        with self._lock:
            if self._open:
                publisher.publish(msg)

    def _publish_camera(self, index: int, product: CameraProduct, header: Header, cloud: np.ndarray | None) -> None:
        """Depth and its camera_info always go together; `cloud` is the camera's own, in its frame."""
        pubs = self.per_camera[index]
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
        if cloud is not None:
            self._publish(pubs["points"], cloud_msg(cloud, header))
