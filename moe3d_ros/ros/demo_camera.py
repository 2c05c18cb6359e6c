"""demo_camera: a synthetic camera for trying moe3d_node without hardware.

Renders one procedural scene along a looping camera path and publishes, with one stamp per frame:
- <ns>/image_raw (rgb8) and <ns>/camera_info, as a camera driver does (optionally blurred:
  `blur` sigma and `motion_blur` length in pixels, as defocus and motion blur a robot's frames;
  both may be changed while it runs, e.g. `ros2 param set /demo_camera/demo_camera blur 2.0`);
- <ns>/depth_gt (32FC1, metres along the optical axis), the exact depth, so the demo can score
  the node's output live;
- <ns>/depth_sparse (32FC1 metres, 0 = no return): a multi-beam LiDAR projected into the image,
  about 1% of the pixels with 2% noise and 3% outliers (for scale.mode depth);
- <ns>/pose_gt (geometry_msgs/PoseStamped, frame `world`): the camera's exact pose (its optical
  frame in the scene), so a mapper fed the node's clouds can be compared with the truth;
- <ns>/odom (nav_msgs/Odometry, frame `odom`, child `base_link`): the motion of a base that carries
  the camera at data.sensors.CAMERA_IN_BASE, integrated with 2% noise (for scale.mode odometry).
"""
from __future__ import annotations

import numpy as np
import torch
from geometry_msgs.msg import PoseStamped
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from ..data.blur import BlurCondition
from ..data.sensors import SimulatedSensors
from ..data.sequence import RGBDSequence
from ..data.synthetic import SyntheticConfig, default_intrinsics, generate_scene
from ..model.geometry import matrix_to_quaternion
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
        self.declare_parameter("blur", 0.0, ParameterDescriptor(description="Gaussian blur of the images, sigma in pixels "
                                                                            "(focus; depth_gt stays sharp)"))
        self.declare_parameter("motion_blur", 0.0, ParameterDescriptor(description="blur along each frame's image motion to the "
                                                                                   "next frame, median length in pixels"))
        rate = self.get_parameter("rate").value
        seed = self.get_parameter("seed").value
        frames = self.get_parameter("path_frames").value
        if rate <= 0 or frames < 2:
            raise ValueError("rate must be positive and path_frames at least 2")
        self.blur = BlurCondition(sigma=self.get_parameter("blur").value, motion=self.get_parameter("motion_blur").value)
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
        self.sparse_pub = self.create_publisher(Image, "depth_sparse", qos)
        self.odom_pub = self.create_publisher(Odometry, "odom", qos)
        self.pose_pub = self.create_publisher(PoseStamped, "pose_gt", qos)
        self.sensors = SimulatedSensors(seed)
        self.odometry = self.sensors.odometry()
        self.index = 0
        self.create_timer(1.0 / rate, self._tick)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.get_logger().info(f"synthetic scene {seed}: {config.width}x{config.height} at {rate} Hz on {self.get_namespace()} "
                               f"({self.blur.describe()})")

    def _on_set_parameters(self, params) -> SetParametersResult:
        """`blur` and `motion_blur` apply from the next frame on (moe3d-demo --blur-row switches them)."""
        sigma, motion = self.blur.sigma, self.blur.motion
        for param in params:
            if param.name == "blur":
                sigma = param.value
            elif param.name == "motion_blur":
                motion = param.value
        try:
            blur = BlurCondition(sigma=sigma, motion=motion)
        except ValueError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        if blur != self.blur:
            self.get_logger().info(f"images now {blur.describe()}")
        self.blur = blur
        return SetParametersResult(successful=True)

    def _tick(self) -> None:
        pose = self.poses[self.index % len(self.poses)]
        self.index += 1
        image, depth, valid = self.scene.render(pose, self.intrinsics, self.config.height, self.config.width)
        if self.blur.active:
            next_pose = self.poses[self.index % len(self.poses)]
            pair = RGBDSequence("demo", np.stack([image, image]), np.stack([depth, depth]), np.stack([valid, valid]),
                                np.stack([self.intrinsics, self.intrinsics]), np.stack([pose, next_pose]))
            image = self.blur.apply(pair).images[0]
        header = Header(frame_id=FRAME_ID, stamp=self.get_clock().now().to_msg())
        self.depth_pub.publish(depth_msg(np.where(valid, depth, np.nan).astype(np.float32), header))
        self.sparse_pub.publish(depth_msg(self.sensors.sparse_depth(depth, valid, self.index), header))
        self.odom_pub.publish(self._odometry(self.odometry.step(pose), header))
        self.pose_pub.publish(self._pose(pose, header))
        self.info_pub.publish(camera_info_msg(self.intrinsics, self.config.width, self.config.height, header))
        self.image_pub.publish(image_msg(image, "rgb8", header))

    @staticmethod
    def _pose(camera_to_world: np.ndarray, header: Header) -> PoseStamped:
        msg = PoseStamped()
        msg.header.stamp, msg.header.frame_id = header.stamp, "world"
        position, orientation = msg.pose.position, msg.pose.orientation
        position.x, position.y, position.z = (float(v) for v in camera_to_world[:3, 3])
        q = matrix_to_quaternion(torch.from_numpy(camera_to_world[:3, :3])).numpy()
        orientation.x, orientation.y, orientation.z, orientation.w = (float(v) for v in q)
        return msg

    @staticmethod
    def _odometry(base_in_odom: np.ndarray, header: Header) -> Odometry:
        msg = Odometry()
        msg.header.stamp, msg.header.frame_id, msg.child_frame_id = header.stamp, "odom", "base_link"
        position, orientation = msg.pose.pose.position, msg.pose.pose.orientation
        position.x, position.y, position.z = (float(v) for v in base_in_odom[:3, 3])
        q = matrix_to_quaternion(torch.from_numpy(base_in_odom[:3, :3])).numpy()
        orientation.x, orientation.y, orientation.z, orientation.w = (float(v) for v in q)
        return msg


def main(args: list[str] | None = None) -> int:
    return run_node(lambda: DemoCamera(namespace="demo_camera"), "demo_camera", args)


if __name__ == "__main__":
    raise SystemExit(main())
