"""moe3d_lifecycle_node over DDS, driven through its lifecycle services as nav2's lifecycle_manager
drives nodes: nothing is subscribed or published until activate; deactivate stops the outputs and
keeps the model; a bad checkpoint fails configure with the reason and the node stays up."""
from __future__ import annotations

import math
import time

import numpy as np
import pytest

from ros_harness import NodeProcess, domain_id, make_small_model, ros_test_node, spin_once, spin_until

from lifecycle_msgs.msg import State, Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState, GetState  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from moe3d_ros.ros.conversions import rgb_to_image_msg  # noqa: E402

pytestmark = pytest.mark.e2e  # starts ROS processes and talks to them over DDS
DOMAIN_ID = domain_id(15)
RELIABLE = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
RGB = np.random.default_rng(4).integers(0, 256, (120, 160, 3), dtype=np.uint8)
PARAMS = {"image_topics": ["/life/image_raw"], "camera_info_topics": ["none"], "keyframe_spacing": 0.0, "window_size": 1,
          "filter.max_edge_jump": math.inf}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_small_model(tmp_path_factory.mktemp("model") / "tiny")


@pytest.fixture(scope="module")
def ros_node():
    yield from ros_test_node(DOMAIN_ID, "moe3d_lifecycle_test")


def _call(node, client, request, proc):
    spin_until(node, lambda: client.service_is_ready(), 60, f"the service {client.srv_name}", proc)
    future = client.call_async(request)
    spin_until(node, future.done, 120, f"{client.srv_name} to answer", proc)
    return future.result()


def _transition(node, proc, transition_id: int) -> bool:
    client = node.create_client(ChangeState, "/moe3d/moe3d_node/change_state")
    return _call(node, client, ChangeState.Request(transition=Transition(id=transition_id)), proc).success


def _state(node, proc) -> int:
    client = node.create_client(GetState, "/moe3d/moe3d_node/get_state")
    return _call(node, client, GetState.Request(), proc).current_state.id


def _pace(node, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        spin_once(node, timeout_sec=0.02)


def test_configure_activate_deactivate_cleanup(tmp_path, checkpoint, ros_node):
    proc = NodeProcess(DOMAIN_ID, {**PARAMS, "checkpoint": str(checkpoint)}, tmp_path, executable_name="moe3d_lifecycle_node")
    try:
        camera = ros_node.create_publisher(Image, "/life/image_raw", RELIABLE)
        depth: list[Image] = []
        ros_node.create_subscription(Image, "/moe3d/life/depth/image", depth.append, RELIABLE)

        def send() -> None:
            header = Header(frame_id="life_optical_frame")
            header.stamp.sec, header.stamp.nanosec = divmod(time.time_ns(), 1_000_000_000)
            camera.publish(rgb_to_image_msg(RGB, "rgb8", header))

        assert _state(ros_node, proc) == State.PRIMARY_STATE_UNCONFIGURED
        assert camera.get_subscription_count() == 0  # not subscribed before activate
        assert _transition(ros_node, proc, Transition.TRANSITION_CONFIGURE)
        assert _state(ros_node, proc) == State.PRIMARY_STATE_INACTIVE and camera.get_subscription_count() == 0
        assert "configured: model:" in proc.output()
        assert _transition(ros_node, proc, Transition.TRANSITION_ACTIVATE)
        spin_until(ros_node, lambda: camera.get_subscription_count() > 0, 30, "the node's image subscription", proc)
        for _ in range(60):
            send()
            _pace(ros_node, 0.25)
            if depth:
                break
        assert depth, "no depth while active"
        assert _transition(ros_node, proc, Transition.TRANSITION_DEACTIVATE)
        spin_until(ros_node, lambda: camera.get_subscription_count() == 0, 30, "the node to unsubscribe", proc)
        _pace(ros_node, 0.5)
        depth.clear()
        for _ in range(6):
            send()
            _pace(ros_node, 0.25)
        assert not depth  # inactive: nothing published
        assert _transition(ros_node, proc, Transition.TRANSITION_CLEANUP)
        assert _state(ros_node, proc) == State.PRIMARY_STATE_UNCONFIGURED
        assert proc.proc.poll() is None
    finally:
        proc.stop()


def test_a_bad_checkpoint_fails_configure_with_the_reason(tmp_path, ros_node):
    proc = NodeProcess(DOMAIN_ID, {**PARAMS, "checkpoint": str(tmp_path / "missing")}, tmp_path,
                       executable_name="moe3d_lifecycle_node")
    try:
        assert not _transition(ros_node, proc, Transition.TRANSITION_CONFIGURE)
        assert _state(ros_node, proc) == State.PRIMARY_STATE_UNCONFIGURED
        assert "configure failed:" in proc.output() and "missing" in proc.output()
    finally:
        proc.stop()
