"""demo_camera: a synthetic camera for trying moe3d_node without hardware.

Renders one procedural scene along a looping camera path and publishes, with one stamp per frame:
- <ns>/image_raw (rgb8) and <ns>/camera_info, as a camera driver does;
- <ns>/depth_gt (32FC1, metres along the optical axis), the exact depth, so the demo can score
  the node's output live.
"""
from __future__ import annotations

import numpy as np
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from ..data.synthetic import SyntheticConfig, default_intrinsics, generate_scene
from .conversions import camera_info_msg, depth_msg, image_msg
from .runtime import run_node

FRAME_ID = "demo_camera_optical_frame"


class DemoCamera(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("demo_camera", **kwargs)
        self.declare_parameter("rate", 5.0, ParameterDescriptor(description="frames per second"))
        self.declare_parameter("seed", 900_000, ParameterDescriptor(description="scene seed (held out from training)"))
        self.declare_parameter("path_frames", 48, ParameterDescriptor(description="frames before the camera path loops"))
        self.declare_parameter("width", 224, ParameterDescriptor(description="image width"))
        self.declare_parameter("height", 168, ParameterDescriptor(description="image height"))
        rate = self.get_parameter("rate").value
        seed = self.get_parameter("seed").value
        frames = self.get_parameter("path_frames").value
        if rate <= 0 or frames < 2:
            raise ValueError("rate must be positive and path_frames at least 2")
        config = SyntheticConfig(height=self.get_parameter("height").value, width=self.get_parameter("width").value)
        self.config = config
        self.scene = generate_scene(seed, config)
        path = self.scene.camera_path(frames, seed)
        # Forth and back along the path, so the motion stays smooth when it loops.
        self.poses = np.concatenate([path, path[-2:0:-1]])
        self.intrinsics = default_intrinsics(config)
        qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        self.image_pub = self.create_publisher(Image, "image_raw", qos)
        self.info_pub = self.create_publisher(CameraInfo, "camera_info", qos)
        self.depth_pub = self.create_publisher(Image, "depth_gt", qos)
        self.index = 0
        self.create_timer(1.0 / rate, self._tick)
        self.get_logger().info(f"synthetic scene {seed}: {config.width}x{config.height} at {rate} Hz on {self.get_namespace()}")

    def _tick(self) -> None:
        pose = self.poses[self.index % len(self.poses)]
        self.index += 1
        image, depth, valid = self.scene.render(pose, self.intrinsics, self.config.height, self.config.width)
        header = Header(frame_id=FRAME_ID, stamp=self.get_clock().now().to_msg())
        self.depth_pub.publish(depth_msg(np.where(valid, depth, np.nan).astype(np.float32), header))
        self.info_pub.publish(camera_info_msg(self.intrinsics, self.config.width, self.config.height, header))
        self.image_pub.publish(image_msg(image, "rgb8", header))


def main(args: list[str] | None = None) -> int:
    return run_node(lambda: DemoCamera(namespace="demo_camera"), "demo_camera", args)


if __name__ == "__main__":
    raise SystemExit(main())
