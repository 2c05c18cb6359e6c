#!/usr/bin/env python3
"""Host-side cost of the node around the model, and stamp-to-publish latency over DDS.

Part 1 (in process, no DDS): per-stage time for windows of 1 and 4 cameras at 640x480 input
(518x392 model input): decode (bgr8 Image and JPEG CompressedImage), preprocess, postprocess
(content crop + filter), filter alone, message build (depth, camera_info, confidence, gating,
gating colour, cloud, poses) and publish() with a subscriber in another process; plus the
engine's own time with a small model, for the node-overhead ratio.

Part 2 (two processes, real DDS): the node with a small model; this process publishes 1 or 4
cameras at a fixed rate with stamps = now and measures stamp-to-publish latency and output rate.

    python bench/bench_node.py [--repeats 20] [--dds-seconds 20]
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "test"))

import array  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

TARGET_HOST_MS_PER_FRAME = 10.0
TARGET_MESSAGES_MS_4CAM = 5.0
TARGET_NODE_OVERHEAD = 0.10


def small_model(img_size: int = 518):
    from moe3d_ros.model import VGGT, MoEConfig, preset

    torch.manual_seed(0)
    config = dataclasses.replace(preset("tiny").with_moe(MoEConfig(num_experts=4)), img_size=img_size)
    model = VGGT(config).eval()
    torch.nn.init.normal_(model.depth_head.gate.conv2.weight, std=0.5)
    return model


def timed(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000, result


def host_side(repeats: int) -> None:
    import rclpy
    from geometry_msgs.msg import Pose, PoseArray
    from sensor_msgs.msg import CompressedImage, Image, PointCloud2
    from std_msgs.msg import Header

    from moe3d_ros.inference.engine import EngineConfig, InferenceEngine
    from moe3d_ros.outputs.filtering import FilterConfig, boundary_clean_mask
    from moe3d_ros.outputs.postprocess import camera_poses, camera_product, fused_cloud, gating_colors
    from moe3d_ros.inference.preprocess import preprocess_images
    from moe3d_ros.ros.conversions import (
        camera_info_msg, cloud_msg, compressed_to_rgb, depth_msg, image_msg, image_to_rgb, rgb_to_image_msg,
    )

    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    engine = InferenceEngine(small_model(), EngineConfig(device="cpu"))
    cfg = FilterConfig()
    header = Header(frame_id="cam")
    rclpy.init()
    node = rclpy.create_node("bench_node_host")
    cloud_pub = node.create_publisher(PointCloud2, "/bench/points", 1)
    depth_pub = node.create_publisher(Image, "/bench/depth", 1)
    listener = subprocess.Popen([sys.executable, "-c", (
        "import rclpy; from sensor_msgs.msg import PointCloud2, Image; rclpy.init(); n=rclpy.create_node('bench_listener');"
        "n.create_subscription(PointCloud2,'/bench/points',lambda m: None,1); n.create_subscription(Image,'/bench/depth',lambda m: None,1);"
        "\ntry:\n    rclpy.spin(n)\nexcept BaseException:\n    pass")], env=dict(os.environ))
    deadline = time.monotonic() + 30
    while (cloud_pub.get_subscription_count() == 0 or depth_pub.get_subscription_count() == 0) and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)
    print(f"host-side stages, 640x480 input -> 518x392, medians of {repeats} (ms); small model (tiny preset) on 2 CPU threads")
    for cameras in (1, 4):
        rgb = [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(cameras)]
        raw = [rgb_to_image_msg(im, "bgr8", header) for im in rgb]
        jpeg = [CompressedImage(format="jpeg", data=array.array("B", cv2.imencode(".jpg", im)[1].tobytes())) for im in rgb]
        decode_ms, _ = timed(lambda: [image_to_rgb(m) for m in raw], repeats)
        decode_jpeg_ms, _ = timed(lambda: [compressed_to_rgb(m) for m in jpeg], repeats)
        preprocess_ms, _ = timed(lambda: preprocess_images(rgb, "crop", 518), repeats)
        engine.run(rgb)  # warm-up
        engine_ms, pred = timed(lambda: engine.run(rgb), max(3, repeats // 4))
        model_ms = engine_ms - statistics.median([pred.timings["preprocess"] * 1000])
        post_ms, products = timed(lambda: [camera_product(pred, i, cfg, 1.0) for i in range(cameras)], repeats)
        filter_ms, _ = timed(lambda: [boundary_clean_mask(pred.depth[i], pred.depth_conf[i], cfg, pred.gate_entropy[i]) for i in range(cameras)], repeats)
        cloud_points_ms, cloud = timed(lambda: fused_cloud(pred, products, organized=True), repeats)

        def build():
            msgs = []
            for p in products:
                h, w = p.depth.shape
                msgs += [depth_msg(p.depth, header), camera_info_msg(p.intrinsics, w, h, header), image_msg(p.confidence, "32FC1", header),
                         image_msg(p.winner, "mono8", header), image_msg(gating_colors(p.winner), "rgb8", header)]
            positions, quats = camera_poses(pred)
            poses = PoseArray(header=header, poses=[Pose() for _ in positions])
            return msgs, cloud_msg(cloud, header), poses

        build_ms, (msgs, cloud_message, _) = timed(build, repeats)

        def publish():
            for m in msgs[::5]:
                depth_pub.publish(m)
            cloud_pub.publish(cloud_message)

        publish_ms, _ = timed(publish, repeats)
        host_ms = decode_ms + preprocess_ms + post_ms + cloud_points_ms + build_ms + publish_ms
        print(f"  {cameras} camera(s): decode bgr8 {decode_ms:.2f} (jpeg {decode_jpeg_ms:.2f}), preprocess {preprocess_ms:.2f}, "
              f"postprocess+filter {post_ms:.2f} (filter alone {filter_ms:.2f}), cloud points {cloud_points_ms:.2f}, "
              f"message build {build_ms:.2f}, publish {publish_ms:.2f}")
        print(f"    host total {host_ms:.1f} ms = {host_ms / cameras:.1f} ms per frame (target <= {TARGET_HOST_MS_PER_FRAME:.0f}); "
              f"messages {build_ms:.1f} ms (target for 4 cameras <= {TARGET_MESSAGES_MS_4CAM:.0f}); "
              f"engine model time {model_ms:.0f} ms -> node adds {100 * host_ms / model_ms:.1f}% "
              f"(target <= {100 * TARGET_NODE_OVERHEAD:.0f}%); cloud {len(cloud_message.data) / 1e6:.1f} MB")
    listener.terminate()
    listener.wait()
    node.destroy_node()
    rclpy.shutdown()


def over_dds(seconds: float, rate_hz: float) -> None:
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2
    from std_msgs.msg import Header

    from moe3d_ros.io.checkpoint import save_model
    from moe3d_ros.ros.conversions import rgb_to_image_msg
    from ros_harness import NodeProcess

    domain = 150 + os.getpid() % 50
    folder = Path(tempfile.mkdtemp()) / "model"
    save_model(small_model(224), folder)
    os.environ.update(ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", FASTRTPS_DEFAULT_PROFILES_FILE=str(ROOT / "config" / "fastdds_shm.xml"))
    rclpy.init(domain_id=domain)
    print(f"over DDS: node with a small model (224 px input), inputs 640x480 bgr8 at {rate_hz:.0f} Hz per camera, {seconds:.0f} s")
    for cameras in (1, 4):
        topics = [f"/bench{i}/image_raw" for i in range(cameras)]
        proc = NodeProcess(domain, {"checkpoint": str(folder), "image_topics": topics, "window_size": cameras}, Path(tempfile.mkdtemp()))
        node = rclpy.create_node(f"bench_dds_{cameras}")
        pubs = [node.create_publisher(Image, t, QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)) for t in topics]
        # CameraInfo as a driver sends it (a random small model's predicted intrinsics can be non-finite: withheld)
        info_pubs = [node.create_publisher(CameraInfo, t.replace("image_raw", "camera_info"), 1) for t in topics]
        info = CameraInfo(width=640, height=480, k=[500.0, 0.0, 319.5, 0.0, 500.0, 239.5, 0.0, 0.0, 1.0])
        latencies: list[float] = []
        node.create_subscription(PointCloud2, "/moe3d/points",
                                 lambda m: latencies.append(time.time() - (m.header.stamp.sec + m.header.stamp.nanosec * 1e-9)),
                                 QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE))
        deadline = time.monotonic() + 60
        while not all(p.get_subscription_count() for p in pubs) and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.1)
        rng = np.random.default_rng(0)
        msgs = [rgb_to_image_msg(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8), "bgr8", Header(frame_id=f"cam{i}")) for i in range(cameras)]
        start = time.monotonic()
        tick = 0
        while time.monotonic() - start < seconds:
            now = time.time()
            for pub, info_pub, msg in zip(pubs, info_pubs, msgs):
                msg.header.stamp.sec, msg.header.stamp.nanosec = int(now), int((now % 1) * 1e9)
                info.header = msg.header
                info_pub.publish(info)
                pub.publish(msg)
            tick += 1
            next_tick = start + tick / rate_hz
            while time.monotonic() < next_tick:
                rclpy.spin_once(node, timeout_sec=max(0.0, next_tick - time.monotonic()))
        proc.stop()
        node.destroy_node()
        steady = latencies[len(latencies) // 5 :] or latencies
        if steady:
            print(f"  {cameras} camera(s): {len(latencies)} clouds in {seconds:.0f} s = {len(latencies) / seconds:.1f} Hz; "
                  f"stamp-to-receive latency median {1000 * statistics.median(steady):.0f} ms, "
                  f"p90 {1000 * float(np.percentile(steady, 90)):.0f} ms")
        else:
            print(f"  {cameras} camera(s): no cloud received")
    rclpy.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--dds-seconds", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=10.0, help="input rate per camera over DDS [Hz]")
    args = parser.parse_args()
    host_side(args.repeats)
    over_dds(args.dds_seconds, args.rate)


if __name__ == "__main__":
    main()
