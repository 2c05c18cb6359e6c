"""launch_testing test of demo.launch.py: `params_file:=` reaches the node. The installed demo
launch file runs with a params file whose keyframe_spacing (0.25) differs from config/demo.yaml's
(0.4) and the node's default (0.5); the node reports that value over its parameter service, serves
depth for the demo camera, and everything shuts down cleanly. Runs where launch_testing is
importable (a ROS 2 install); skipped elsewhere (the PyPI wheels do not carry launch)."""
from __future__ import annotations

import tempfile
import time
import unittest
from pathlib import Path

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
from rcl_interfaces.srv import GetParameters  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from ros_harness import domain_id  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

pytestmark = pytest.mark.e2e  # starts ROS processes and talks to them over DDS
DOMAIN_ID = domain_id(12)
KEYFRAME_SPACING = 0.25  # config/demo.yaml: 0.4, the node's default: 0.5


@pytest.mark.launch_test
def generate_test_description():
    params = Path(tempfile.mkdtemp()) / "my_demo.yaml"
    params.write_text(f"/**:\n  ros__parameters:\n    keyframe_spacing: {KEYFRAME_SPACING}\n    device: cpu\n")
    launch_file = PathJoinSubstitution([FindPackageShare("moe3d_ros"), "launch", "demo.launch.py"])
    return LaunchDescription(
        [
            SetEnvironmentVariable("ROS_DOMAIN_ID", str(DOMAIN_ID)),
            SetEnvironmentVariable("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST"),
            IncludeLaunchDescription(
                PythonLaunchDescriptionSource(launch_file),
                launch_arguments={"params_file": str(params), "rviz": "false", "rate": "2.0"}.items(),
            ),
            launch_testing.actions.ReadyToTest(),
        ]
    )


class TestDemoWithParamsFile(unittest.TestCase):
    def test_the_node_runs_with_the_params_files_value(self):
        context = rclpy.context.Context()
        rclpy.init(context=context, domain_id=DOMAIN_ID)
        node = rclpy.create_node("demo_launch_probe", context=context)
        executor = rclpy.executors.SingleThreadedExecutor(context=context)
        executor.add_node(node)

        def spin_until(done, what: str, timeout: float = 120.0) -> None:
            deadline = time.monotonic() + timeout
            while not done():
                self.assertLess(time.monotonic(), deadline, f"timed out waiting for {what}")
                executor.spin_once(timeout_sec=0.05)

        try:
            client = node.create_client(GetParameters, "/moe3d/moe3d_node/get_parameters")
            spin_until(client.service_is_ready, "the node's parameter service")
            future = client.call_async(GetParameters.Request(names=["keyframe_spacing", "diagnostics_period"]))
            spin_until(future.done, "the parameter values")
            spacing, period = (value.double_value for value in future.result().values)
            self.assertEqual(spacing, KEYFRAME_SPACING)  # from params_file:=
            self.assertEqual(period, 1.0)  # the node's default: config/demo.yaml (0.5) was not loaded
            received = []
            node.create_subscription(Image, "/moe3d/demo_camera/depth/image", received.append,
                                     QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))
            spin_until(lambda: bool(received), "depth of the demo camera")
            self.assertEqual(received[0].encoding, "32FC1")
        finally:
            node.destroy_node()
            rclpy.shutdown(context=context)


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    def test_clean_exit(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info, allowable_exit_codes=[0])
