#!/usr/bin/env python3
"""A camera driver in its own process, as robots have one: rgb8 frames of WxH at a fixed rate,
stamped with its clock (optionally shifted), on a publisher with the default QoS (reliable,
depth 10) or the sensor-data QoS (best effort), and whatever DDS settings its environment gives
(the caller removes FASTRTPS_DEFAULT_PROFILES_FILE for "no profile").

It waits for a subscriber, then `--settle` seconds (the node re-decides its input QoS once a
second), publishes `--frames` frames and prints one JSON line: {"published": n, "stamps": [...]}.

    python test/camera_process.py --topic /cam/image_raw --qos default --frames 40 --rate 5
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from moe3d_ros.ros.conversions import image_msg


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--topic", required=True)
    parser.add_argument("--qos", choices=("default", "sensor_data"), default="default")
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--rate", type=float, default=5.0)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--settle", type=float, default=2.5, help="seconds between the first match and the first frame")
    parser.add_argument("--stamp-offset", type=float, default=0.0, help="seconds added to every stamp (a clock that is off)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for a subscriber")
    args = parser.parse_args()
    rclpy.init()
    node = rclpy.create_node("camera_process")
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE) if args.qos == "default" else qos_profile_sensor_data
    publisher = node.create_publisher(Image, args.topic, qos)
    deadline = time.monotonic() + args.timeout
    while publisher.get_subscription_count() == 0:
        if time.monotonic() > deadline:
            print(json.dumps({"published": 0, "stamps": [], "error": "no subscriber"}), flush=True)
            return 1
        rclpy.spin_once(node, timeout_sec=0.05)
    time.sleep(args.settle)
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (args.height, args.width, 3), dtype=np.uint8)
    msg = image_msg(pixels, "rgb8", Header(frame_id="camera_process_optical_frame"))
    stamps = []
    start = time.monotonic()
    for i in range(args.frames):
        stamp_ns = node.get_clock().now().nanoseconds + int(args.stamp_offset * 1e9)
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
        publisher.publish(msg)
        stamps.append(stamp_ns)
        time.sleep(max(0.0, start + (i + 1) / args.rate - time.monotonic()))
    time.sleep(1.0)  # reliable: let the last samples be repaired before the writer goes away
    print(json.dumps({"published": len(stamps), "stamps": stamps}), flush=True)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
