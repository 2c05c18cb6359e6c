"""Input subscriptions whose reliability fits the publishers (parameter `input_qos`).

A best-effort subscription never asks a reliable publisher to repair lost fragments, so a
900 KB image that loses one fragment between processes is lost whole: with default DDS settings
a separate camera process delivered 25-45% of its 640x480 frames to a best-effort subscriber and
all of them to a reliable one. A reliable subscription cannot match a best-effort publisher. So in
`auto` mode each topic is subscribed reliable when every publisher on it is reliable, best effort
otherwise, and re-decided when publishers come and go. History stays depth 1 (newest wins).

The standard ROS 2 QoS overrides (`qos_overrides./topic.subscription.reliability|depth|history`)
are declared for every input and win over `input_qos`: in `auto` mode the reliability parameter
reads `system_default` until the user sets it.

In `auto` mode a subscription has no QoS event handlers. rclpy's executor builds its wait set in
one thread while a timer callback runs in another; an event handler whose subscription is
destroyed in between raises InvalidHandle in the executor and ends the node (seen at start-up,
when a camera's topics all turned reliable at once). The subscription itself is safe to replace:
rclpy skips a destroyed one. The incompatible-QoS warning those handlers would print is what
`auto` resolves anyway, with its own log line.
"""
from __future__ import annotations

from typing import Callable

from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.qos_overriding_options import QosCallbackResult, QoSOverridingOptions

try:  # Iron and later
    from rclpy.event_handler import SubscriptionEventCallbacks
except ImportError:  # Humble
    from rclpy.qos_event import SubscriptionEventCallbacks

FIXED = {"sensor_data": ReliabilityPolicy.BEST_EFFORT, "reliable": ReliabilityPolicy.RELIABLE}


def reliability_for(publishers: list[ReliabilityPolicy]) -> ReliabilityPolicy:
    """Reliable only when there are publishers and all of them are reliable."""
    reliable = bool(publishers) and all(p == ReliabilityPolicy.RELIABLE for p in publishers)
    return ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT


class InputSubscription:
    """One input topic; `update()` (called periodically) re-subscribes when `auto` changes its mind."""

    def __init__(self, node: Node, msg_type: type, topic: str, callback: Callable, mode: str, log: Callable[[str], None]) -> None:
        self.node, self.msg_type, self.callback, self.log = node, msg_type, callback, log
        self.topic = node.resolve_topic_name(topic)
        self.mode = mode
        self.overridden = False
        self.reliability = ReliabilityPolicy.BEST_EFFORT
        self.subscription = self._subscribe()
        if mode == "auto" and not self.overridden:
            self.log(f"{self.topic}: subscribed {self.describe()} (no publisher yet: best effort matches any)"
                     if not self._publishers() else f"{self.topic}: subscribed {self.describe()}")

    def destroy(self) -> None:
        self.node.destroy_subscription(self.subscription)

    def describe(self) -> str:
        how = "QoS override" if self.overridden else f"input_qos {self.mode}"
        return f"{'reliable' if self.reliability == ReliabilityPolicy.RELIABLE else 'best effort'}, depth 1 ({how})"

    def _publishers(self) -> list[ReliabilityPolicy]:
        return [info.qos_profile.reliability for info in self.node.get_publishers_info_by_topic(self.topic)]

    def _resolve(self, qos: QoSProfile) -> QosCallbackResult:
        """Called by rclpy with the QoS after the user's overrides, before the subscription exists."""
        if qos.reliability == ReliabilityPolicy.SYSTEM_DEFAULT:
            qos.reliability = reliability_for(self._publishers()) if self.mode == "auto" else FIXED[self.mode]
        else:
            self.overridden = True
        self.reliability = qos.reliability
        return QosCallbackResult(successful=True)

    def _subscribe(self):
        initial = ReliabilityPolicy.SYSTEM_DEFAULT if self.mode == "auto" else FIXED[self.mode]
        qos = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=initial)
        if self.mode == "auto":
            options = QoSOverridingOptions.with_default_policies(callback=self._resolve)
            events = SubscriptionEventCallbacks(use_default_callbacks=False)  # replaceable: see the module docstring
        else:
            # The parameter shows the fixed choice; a user's override still differs from it or not.
            options = QoSOverridingOptions.with_default_policies(callback=self._accept_fixed)
            events = None  # never replaced: rclpy's default handlers warn about incompatible publishers
        return self.node.create_subscription(self.msg_type, self.topic, self.callback, qos,
                                             qos_overriding_options=options, event_callbacks=events)

    def _accept_fixed(self, qos: QoSProfile) -> QosCallbackResult:
        self.overridden = qos.reliability != FIXED[self.mode]
        self.reliability = qos.reliability
        return QosCallbackResult(successful=True)

    def update(self) -> None:
        if self.mode != "auto" or self.overridden:
            return
        publishers = self._publishers()
        wanted = reliability_for(publishers)
        if wanted == self.reliability:
            return
        self.node.destroy_subscription(self.subscription)
        self.subscription = self._subscribe()
        reliable = sum(p == ReliabilityPolicy.RELIABLE for p in publishers)
        self.log(f"{self.topic}: now subscribed {self.describe()}: {len(publishers)} publisher(s), {reliable} reliable")
