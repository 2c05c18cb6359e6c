"""input_qos auto replaces subscriptions while a multi-threaded executor spins, as the node does.

CI once lost a demo run at start-up: the node's QoS timer destroyed a subscription (and its QoS
event handler) in one executor thread while the other built the wait set, and rclpy raised
InvalidHandle out of spin_once. This reproduces that schedule many times over.
"""
from __future__ import annotations

import threading
import time

import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy is not installed (ROS 2 or the ros-jazzy-rclpy wheel)")
from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from moe3d_ros.ros.input_qos import InputSubscription  # noqa: E402
from ros_harness import domain_id, probe_node  # noqa: E402

DOMAIN_ID = domain_id(9)
TOPICS = 20
FLIPS = 60
UPDATE_PERIOD_S = 0.005  # the node re-decides once a second; here as often as possible


def test_subscriptions_are_replaced_while_the_executor_spins(tmp_path):
    """Publishers of 20 topics turn reliable and back 60 times; every subscription follows each
    turn, and the executor thread never raises."""
    with probe_node(DOMAIN_ID, "input_qos_subscriber") as node, probe_node(DOMAIN_ID, "input_qos_publisher") as peer:
        inputs = [InputSubscription(node, Image, f"/input_qos_race/t{i}", lambda msg: None, "auto", lambda line: None)
                  for i in range(TOPICS)]
        node.create_timer(UPDATE_PERIOD_S, lambda: [subscription.update() for subscription in inputs])
        executor = MultiThreadedExecutor(num_threads=2, context=node.context)
        executor.add_node(node)
        stop, errors = threading.Event(), []

        def spin() -> None:
            try:
                while not stop.is_set():
                    executor.spin_once(timeout_sec=0.01)
            except Exception as exc:  # what the node's spin loop would die of
                errors.append(exc)

        spinner = threading.Thread(target=spin)
        spinner.start()
        publishers: dict[int, object] = {}
        followed = 0
        try:
            for flip in range(FLIPS):
                wanted = ReliabilityPolicy.RELIABLE if flip % 2 == 0 else ReliabilityPolicy.BEST_EFFORT
                for i in range(TOPICS):  # the peer is never spun: only the subscriber's executor races
                    if i in publishers:
                        peer.destroy_publisher(publishers[i])
                    publishers[i] = peer.create_publisher(Image, f"/input_qos_race/t{i}", QoSProfile(depth=1, reliability=wanted))
                deadline = time.monotonic() + 10.0
                while not errors and time.monotonic() < deadline:
                    if all(subscription.reliability == wanted for subscription in inputs):
                        followed += 1
                        break
                    time.sleep(0.01)
                if errors:
                    break
        finally:
            stop.set()
            spinner.join(timeout=10.0)
            executor.shutdown(timeout_sec=5.0)
        assert not errors, f"the executor raised after {followed} turns: {type(errors[0]).__name__}: {errors[0]}"
        assert followed == FLIPS, f"the subscriptions followed {followed} of {FLIPS} turns of the publishers"
