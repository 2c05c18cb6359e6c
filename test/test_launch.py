"""launch_testing test of moe3d.launch.py: the installed launch file starts the node with a params
file that names the camera topic (no image_topics launch argument: the file's value must stand),
the node serves depth for that topic, and shuts down cleanly with exit code 0. Runs where launch_testing is importable (a ROS 2
install); skipped elsewhere (the PyPI wheels do not carry launch)."""
from __future__ import annotations

import tempfile
import time
import unittest
from pathlib import Path

import numpy as np
import pytest

launch_testing = pytest.importorskip("launch_testing", reason="launch_testing is not installed (it comes with a ROS 2 install)")
pytest.importorskip("launch_ros", reason="launch_ros is not installed (it comes with a ROS 2 install)")

import launch_testing.actions  # noqa: E402
import launch_testing.asserts  # noqa: E402
import rclpy  # noqa: E402
from launch import LaunchDescription  # noqa: E402
from launch.actions import IncludeLaunchDescription, SetEnvironmentVariable  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
from launch.substitutions import PathJoinSubstitution  # noqa: E402
from launch_ros.substitutions import FindPackageShare  # noqa: E402
from ros_harness import domain_id  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from moe3d_ros.ros.conversions import rgb_to_image_msg  # noqa: E402

pytestmark = pytest.mark.e2e  # starts ROS processes and talks to them over DDS
DOMAIN_ID = domain_id(7)
TOPIC = "/launch_cam/image_raw"


@pytest.mark.launch_test
def generate_test_description():
    from ros_harness import make_small_model

    folder = Path(tempfile.mkdtemp())
    model = make_small_model(folder / "tiny")
    params = folder / "params.yaml"
    params.write_text(f"/**:\n  ros__parameters:\n    image_topics: ['{TOPIC}']\n    device: cpu\n")
    launch_file = PathJoinSubstitution([FindPackageShare("moe3d_ros"), "launch", "moe3d.launch.py"])
    return LaunchDescription(
        [
            SetEnvironmentVariable("ROS_DOMAIN_ID", str(DOMAIN_ID)),
            SetEnvironmentVariable("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST"),
            IncludeLaunchDescription(
                PythonLaunchDescriptionSource(launch_file),
                launch_arguments={"checkpoint": str(model), "params_file": str(params)}.items(),
            ),
            launch_testing.actions.ReadyToTest(),
        ]
    )


class TestLaunchedNode(unittest.TestCase):
    def test_depth_is_served_for_the_camera(self):
        context = rclpy.context.Context()
        rclpy.init(context=context, domain_id=DOMAIN_ID)
        node = rclpy.create_node("launch_test_probe", context=context)
        executor = rclpy.executors.SingleThreadedExecutor(context=context)
        executor.add_node(node)
        try:
            publisher = node.create_publisher(Image, TOPIC, QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
            received = []
            node.create_subscription(Image, "/moe3d/launch_cam/depth/image", received.append, 10)
            deadline = time.monotonic() + 120
            rgb = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
            while not received:
                self.assertLess(time.monotonic(), deadline, "no depth from the launched node")
                if publisher.get_subscription_count() > 0:
                    header = Header(frame_id="launch_cam_optical_frame")
                    header.stamp = node.get_clock().now().to_msg()
                    publisher.publish(rgb_to_image_msg(rgb, "rgb8", header))
                for _ in range(5):
                    executor.spin_once(timeout_sec=0.05)
            self.assertEqual(received[0].encoding, "32FC1")
            self.assertEqual(received[0].header.frame_id, "launch_cam_optical_frame")
        finally:
            node.destroy_node()
            rclpy.shutdown(context=context)


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    def test_clean_exit(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info, allowable_exit_codes=[0])
